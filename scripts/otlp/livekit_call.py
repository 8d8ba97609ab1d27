#!/usr/bin/env python3
"""Drive a REAL livekit-agents AgentSession (no room) and export its OTLP traces + metrics.

What is real: livekit-agents' AgentSession / AgentActivity / AudioRecognition / generation
code, its telemetry (telemetry.set_tracer_provider, the `agent_session`, `user_turn`,
`eou_wait`, `agent_turn`, `llm_node`, `llm_request`, `tts_node`, `tts_request` spans) and its
OTel metrics (lk.agents.usage.*, gen_ai.client.*), plus the real livekit-plugins-openai LLM
(gpt-4o-mini-2024-07-18) and TTS (tts-1) whose HTTP goes to a local httpx.MockTransport.

What is simulated: there is no LiveKit room (session.start(agent) with custom audio I/O:
an AudioInput yielding 20 ms silent frames and an AudioOutput that 'plays' in real time),
and the STT is a streaming subclass of livekit's stt.STT base (provider "deepgram",
model "nova-3") that emits START_OF_SPEECH / INTERIM / FINAL / RECOGNITION_USAGE /
END_OF_SPEECH on a script instead of listening to the audio. turn_detection="stt".

    python livekit_call.py --endpoint http://127.0.0.1:4318 --header 'Authorization=Bearer KEY' \
        --room room-demo-1 --turns 3 [--gzip]
"""

import asyncio
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    Recorder, add_summary_argument, base_parser, failed, metric_exporter, parse_headers, span_exporter, write_summary,
)
from _fake_openai import LLM_MODEL, USER_LINES, FakeOpenAI  # noqa: E402

import openai as openai_sdk  # noqa: E402
from livekit import rtc  # noqa: E402
from livekit.agents import (  # noqa: E402
    DEFAULT_API_CONNECT_OPTIONS,
    Agent,
    AgentSession,
    APIConnectOptions,
    stt,
)
from livekit.agents.telemetry import set_tracer_provider  # noqa: E402
from livekit.agents.types import NOT_GIVEN, NotGivenOr  # noqa: E402
from livekit.agents.voice import io  # noqa: E402
from livekit.plugins import openai as lk_openai  # noqa: E402
from opentelemetry import metrics as metrics_api  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"))

IN_RATE = 16000


class ScriptedSTT(stt.STT):
    """Streaming STT built on livekit's stt.STT base; transcripts come from a script."""

    def __init__(self):
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=True))
        self.utterances: asyncio.Queue = asyncio.Queue()

    @property
    def model(self) -> str:
        return "nova-3"

    @property
    def provider(self) -> str:
        return "deepgram"

    async def _recognize_impl(self, buffer, *, language=NOT_GIVEN, conn_options=DEFAULT_API_CONNECT_OPTIONS):
        raise NotImplementedError

    def stream(self, *, language: NotGivenOr[str] = NOT_GIVEN,
               conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS):
        return ScriptedStream(stt=self, conn_options=conn_options, sample_rate=IN_RATE)


class ScriptedStream(stt.RecognizeStream):
    async def _run(self) -> None:
        owner: ScriptedSTT = self._stt  # type: ignore[assignment]

        async def drain_audio():
            async for _ in self._input_ch:
                pass

        drain = asyncio.create_task(drain_audio())
        try:
            n = 0
            while True:
                text, speech_secs = await owner.utterances.get()
                n += 1
                rid = f"dg-req-{n:04d}"
                t_start = time.time()
                self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH,
                                                           request_id=rid))
                words = text.split()
                for i in range(1, len(words)):
                    await asyncio.sleep(speech_secs / len(words))
                    self._event_ch.send_nowait(stt.SpeechEvent(
                        type=stt.SpeechEventType.INTERIM_TRANSCRIPT, request_id=rid,
                        alternatives=[stt.SpeechData(language="en", text=" ".join(words[:i]), confidence=0.8)]))
                await asyncio.sleep(0.15)
                self._event_ch.send_nowait(stt.SpeechEvent(
                    type=stt.SpeechEventType.FINAL_TRANSCRIPT, request_id=rid,
                    alternatives=[stt.SpeechData(language="en", text=text, confidence=0.97,
                                                 start_time=0.0, end_time=speech_secs)],
                    speech_start_time=t_start))
                self._event_ch.send_nowait(stt.SpeechEvent(
                    type=stt.SpeechEventType.RECOGNITION_USAGE, request_id=rid,
                    recognition_usage=stt.RecognitionUsage(audio_duration=round(time.time() - t_start, 3))))
                self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.END_OF_SPEECH,
                                                           request_id=rid))
        finally:
            drain.cancel()


class SilentMic(io.AudioInput):
    def __init__(self):
        super().__init__(label="SilentMic")
        self._next = None

    async def __anext__(self) -> rtc.AudioFrame:
        now = time.perf_counter()
        if self._next is None:
            self._next = now
        self._next += 0.02
        await asyncio.sleep(max(0.0, self._next - now))
        n = IN_RATE // 50
        return rtc.AudioFrame(b"\x00\x00" * n, IN_RATE, 1, n)


class NullSpeaker(io.AudioOutput):
    """Plays captured audio in real time into nowhere and reports playback like a sink."""

    def __init__(self):
        super().__init__(label="NullSpeaker", capabilities=io.AudioOutputCapabilities(pause=False))
        self._pushed = 0.0
        self._started_at = None
        self._task = None
        self.segments_done = 0

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._started_at is None:
            self._started_at = time.time()
            self.on_playback_started(created_at=self._started_at)
        self._pushed += frame.duration

    def flush(self) -> None:
        super().flush()
        if self._started_at is None:
            return
        pushed, started = self._pushed, self._started_at
        self._pushed, self._started_at = 0.0, None

        async def finish():
            await asyncio.sleep(max(0.0, started + pushed - time.time()))
            self.on_playback_finished(playback_position=pushed, interrupted=False)
            self.segments_done += 1

        self._task = asyncio.ensure_future(finish())

    def clear_buffer(self) -> None:
        if self._started_at is not None:
            pos = min(self._pushed, time.time() - self._started_at)
            self._pushed, self._started_at = 0.0, None
            self.on_playback_finished(playback_position=pos, interrupted=True)


async def run(args):
    headers = parse_headers(args.header)
    resource = Resource.create({"service.name": args.service_name})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(BatchSpanProcessor(span_exporter(args.endpoint, headers, args.gzip)))
    recorder = Recorder(tp)
    # A real job stamps {"room_id": <room sid>, "job_id": <job id>} on every span (and
    # gen_ai.conversation.id = room sid); there is no job here, so the driver stamps the same keys.
    set_tracer_provider(tp, metadata={"room_id": args.room, "job_id": args.job_id})
    reader = PeriodicExportingMetricReader(metric_exporter(args.endpoint, headers, args.gzip),
                                           export_interval_millis=5000)
    # A real job's usage points carry the same job attributes; without a job, the driver puts
    # them on the meter provider's resource, where voicemon reads them too.
    metric_resource = Resource.create({"service.name": args.service_name, "room_id": args.room,
                                       "job_id": args.job_id})
    mp = MeterProvider(resource=metric_resource, metric_readers=[reader])
    metrics_api.set_meter_provider(mp)

    fake = FakeOpenAI()
    client = openai_sdk.AsyncClient(api_key="sk-offline", max_retries=0, http_client=fake.client())
    llm = lk_openai.LLM(model=LLM_MODEL, client=client, temperature=0.7)
    tts = lk_openai.TTS(model="tts-1", voice="alloy", client=client, response_format="pcm")
    scripted = ScriptedSTT()

    session = AgentSession(stt=scripted, llm=llm, tts=tts, turn_detection="stt")
    speaker = NullSpeaker()
    session.input.audio = SilentMic()
    session.output.audio = speaker
    agent = Agent(instructions="You are a friendly order-support voice agent. Keep answers short.")

    t0 = time.time()
    await session.start(agent)
    for i in range(args.turns):
        await asyncio.sleep(0.4)
        before = speaker.segments_done
        await scripted.utterances.put((USER_LINES[i % len(USER_LINES)], 1.0))
        deadline = time.time() + 20
        while time.time() < deadline and speaker.segments_done <= before:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
    await session.aclose()
    tp.force_flush()
    tp.shutdown()
    mp.force_flush()
    mp.shutdown()
    write_summary(args.summary, summarize(recorder.spans()))
    print(f"livekit_call: {args.turns} turns, {fake.llm_calls} LLM calls, {time.time() - t0:.1f}s",
          file=sys.stderr)


def summarize(spans):
    """What LiveKit measured, read from its own spans: each agent turn's end-to-end
    latency, LLM tokens, TTS characters, and the failed request attempts."""
    def attr(span, key, default=0):
        return span.attributes.get(key, default)

    def tts_characters(span):
        metrics = json.loads(span.attributes.get("lk.tts_metrics", "{}"))
        return metrics.get("characters_count", 0)

    turns = sorted((s for s in spans if s.name == "agent_turn"), key=lambda s: s.start_time)
    llm = [s for s in spans if s.name == "llm_request"]
    tts = [s for s in spans if s.name == "tts_request"]
    attempts = [s for s in spans if s.name in ("llm_request_run", "tts_request_run")]
    return {
        "turns": [{"number": n + 1, "e2e_ms": attr(t, "lk.e2e_latency") * 1000}
                  for n, t in enumerate(turns) if "lk.e2e_latency" in t.attributes],
        "llm": {"requests": len(llm), "input_tokens": sum(attr(s, "gen_ai.usage.input_tokens") for s in llm),
                "output_tokens": sum(attr(s, "gen_ai.usage.output_tokens") for s in llm)},
        "tts": {"requests": len(tts), "characters": sum(tts_characters(s) for s in tts)},
        "attempts": {"requests": len(attempts), "errors": sum(1 for s in attempts if failed(s))},
    }


def main():
    p = base_parser("Drive a real livekit-agents AgentSession with OTel tracing")
    p.add_argument("--room", default="RM_demo1", help="stamped as room_id span metadata (a real job uses the room sid)")
    p.add_argument("--job-id", default="AJ_driver1")
    p.add_argument("--service-name", default="voicemon-livekit-driver")
    add_summary_argument(p)
    args = p.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
