#!/usr/bin/env python3
"""Drive a REAL Pipecat pipeline with tracing enabled and export its OTLP traces.

What is real: pipecat's PipelineWorker (enable_tracing=True, conversation_id=...),
TurnTrackingObserver / UserBotLatencyObserver / TurnTraceObserver, pipecat's
setup_tracing(), the user/assistant context aggregators (VAD start strategy +
speech-timeout stop strategy), BaseOutputTransport (emits BotStarted/StoppedSpeaking),
and pipecat's real OpenAI services - OpenAISTTService (Whisper, segmented),
OpenAILLMService (streaming chat completions) and OpenAITTSService - with their
@traced_stt / @traced_llm / @traced_tts decorators.

What is simulated: the network. Each service's AsyncOpenAI client gets an
httpx.MockTransport that answers /v1/audio/transcriptions, /v1/chat/completions
(SSE stream with a final usage chunk) and /v1/audio/speech (PCM) locally with
realistic delays. The "caller" is a frame injector pushing VAD frames + silent
16 kHz audio, as an input transport with a VAD analyzer would.

    python pipecat_call.py --endpoint http://127.0.0.1:4318 \
        --header 'Authorization=Bearer KEY' --conversation-id conv-1 --turns 3 [--gzip] [--error-turn 2]
"""

import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Recorder, add_summary_argument, base_parser, failed, parse_headers, span_exporter, write_summary  # noqa: E402

os.environ.setdefault("LOGURU_LEVEL", "WARNING")

import httpx  # noqa: E402
from loguru import logger  # noqa: E402

logger.remove()
logger.add(sys.stderr, level=os.environ.get("LOGURU_LEVEL", "WARNING"))

from openai import AsyncOpenAI  # noqa: E402
from opentelemetry import trace  # noqa: E402

from pipecat.frames.frames import (  # noqa: E402
    BotStoppedSpeakingFrame,
    EndFrame,
    InputAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.aggregators.llm_context import LLMContext  # noqa: E402
from pipecat.processors.aggregators.llm_response_universal import (  # noqa: E402
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.services.openai.llm import OpenAILLMService as _RealOpenAILLMService  # noqa: E402
from pipecat.services.openai.stt import OpenAISTTService  # noqa: E402
from pipecat.services.openai.tts import OpenAITTSService  # noqa: E402
from pipecat.transports.base_output import BaseOutputTransport  # noqa: E402
from pipecat.transports.base_transport import TransportParams  # noqa: E402
from pipecat.turns.user_start.vad_user_turn_start_strategy import VADUserTurnStartStrategy  # noqa: E402
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (  # noqa: E402
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies  # noqa: E402
from pipecat.utils.tracing.setup import setup_tracing  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from _fake_openai import IN_RATE, LLM_MODEL, OUT_RATE, STT_MODEL, TTS_MODEL, FakeOpenAI  # noqa: E402


def make_openai_llm_class(fake: FakeOpenAI):
    # Same class name as the real service so pipecat derives gen_ai.provider.name="openai".
    class OpenAILLMService(_RealOpenAILLMService):
        def create_client(self, api_key=None, base_url=None, organization=None, project=None,
                          default_headers=None, **kwargs):
            return AsyncOpenAI(api_key=api_key, base_url=base_url, organization=organization,
                               project=project, default_headers=default_headers, max_retries=0,
                               http_client=fake.client())

    return OpenAILLMService


class BotStopCounter(BaseObserver):
    """Counts BotStoppedSpeakingFrame so the caller knows when to speak next."""

    def __init__(self):
        super().__init__()
        self.count = 0
        self._seen = set()

    async def on_push_frame(self, data: FramePushed):
        if (isinstance(data.frame, BotStoppedSpeakingFrame) and data.direction == FrameDirection.DOWNSTREAM
                and data.frame.id not in self._seen):
            self._seen.add(data.frame.id)
            self.count += 1


class NullOutputTransport(BaseOutputTransport):
    """Output transport that 'plays' audio in real time into nowhere."""

    async def start(self, frame):
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame) -> bool:
        await asyncio.sleep(len(frame.audio) / (frame.sample_rate * 2 * frame.num_channels))
        return True


async def run(args):
    headers = parse_headers(args.header)
    ok = setup_tracing(service_name=args.service_name,
                       exporter=span_exporter(args.endpoint, headers, args.gzip))
    if not ok:
        raise SystemExit("pipecat setup_tracing failed")
    recorder = Recorder(trace.get_tracer_provider())

    fake = FakeOpenAI(error_turn=args.error_turn)
    stt = OpenAISTTService(api_key="sk-offline", http_client=fake.client(),
                           settings=OpenAISTTService.Settings(model=STT_MODEL))
    LLM = make_openai_llm_class(fake)
    llm = LLM(api_key="sk-offline", settings=LLM.Settings(model=LLM_MODEL, temperature=0.7,
              system_instruction="You are a friendly order-support voice agent. Keep answers short."))
    tts = OpenAITTSService(api_key="sk-offline", http_client=fake.client(),
                           settings=OpenAITTSService.Settings(model=TTS_MODEL, voice="alloy"))
    out = NullOutputTransport(TransportParams(audio_out_enabled=True, audio_out_sample_rate=OUT_RATE))

    bot_stops = BotStopCounter()
    context = LLMContext()
    aggregators = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            user_turn_strategies=UserTurnStrategies(
                start=[VADUserTurnStartStrategy()],
                stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.25)],
            )
        ),
    )
    pipeline = Pipeline([stt, aggregators.user(), llm, tts, out, aggregators.assistant()])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=IN_RATE, audio_out_sample_rate=OUT_RATE,
                              enable_metrics=True, enable_usage_metrics=True),
        enable_tracing=True,
        conversation_id=args.conversation_id,
        additional_span_attributes={"deployment.tenant": "demo"} if args.extra_attrs else None,
        cancel_on_idle_timeout=False,
        observers=[bot_stops],
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(w, frame):
        started.set()

    async def caller():
        await asyncio.wait_for(started.wait(), timeout=10)
        chunk_bytes = int(IN_RATE * 2 * 0.02)  # 20 ms
        for turn in range(args.turns):
            await asyncio.sleep(0.3)
            await worker.queue_frame(VADUserStartedSpeakingFrame(start_secs=0.2))
            for _ in range(50):  # 1 s of (silent) speech
                await worker.queue_frame(InputAudioRawFrame(b"\x00" * chunk_bytes, IN_RATE, 1))
                await asyncio.sleep(0.02)
            await worker.queue_frame(VADUserStoppedSpeakingFrame(stop_secs=0.2))
            # wait for the bot to answer and finish speaking (or the LLM call to fail)
            deadline = time.time() + 15
            while time.time() < deadline:
                await asyncio.sleep(0.1)
                if fake.llm_calls >= turn + 1 and fake.error_turn == fake.llm_calls:
                    await asyncio.sleep(0.5)
                    break
                if bot_stops.count >= turn + 1 - (1 if fake.error_turn and fake.error_turn <= turn + 1 else 0):
                    break
        await asyncio.sleep(0.5)
        await worker.queue_frame(EndFrame())


    t0 = time.time()
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), caller())
    provider = trace.get_tracer_provider()
    provider.force_flush()
    provider.shutdown()
    write_summary(args.summary, summarize(recorder.spans()))
    print(f"pipecat_call: {args.turns} turns, {fake.llm_calls} LLM calls, {fake.stt_calls} STT calls, "
          f"{time.time() - t0:.1f}s", file=sys.stderr)


def summarize(spans):
    """What Pipecat measured, read from its own spans: each turn's user → bot latency, and
    the usage and failures of its STT, LLM and TTS requests."""
    def attr(span, key, default=0):
        return span.attributes.get(key, default)

    turns = sorted((s for s in spans if s.name == "turn"), key=lambda s: attr(s, "turn.number"))
    of = lambda kind: [s for s in spans if s.name == kind or s.name.startswith(kind + "_")]
    return {
        "turns": [{"number": attr(t, "turn.number"), "e2e_ms": attr(t, "turn.user_bot_latency_seconds") * 1000}
                  for t in turns if "turn.user_bot_latency_seconds" in t.attributes],
        "llm": {"requests": len(of("llm")), "errors": sum(1 for s in of("llm") if failed(s)),
                "input_tokens": sum(attr(s, "gen_ai.usage.input_tokens") for s in of("llm")),
                "output_tokens": sum(attr(s, "gen_ai.usage.output_tokens") for s in of("llm"))},
        "stt": {"requests": len(of("stt")), "audio_seconds": sum(attr(s, "metrics.audio_seconds") for s in of("stt"))},
        "tts": {"requests": len(of("tts")), "characters": sum(attr(s, "metrics.character_count") for s in of("tts"))},
    }


def main():
    p = base_parser("Drive a real Pipecat pipeline with OTel tracing")
    p.add_argument("--conversation-id", default=None)
    p.add_argument("--error-turn", type=int, default=None, help="1-based LLM call that returns HTTP 500")
    p.add_argument("--service-name", default="voicemon-pipecat-driver")
    p.add_argument("--extra-attrs", action="store_true", help="set additional_span_attributes")
    add_summary_argument(p)
    args = p.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
