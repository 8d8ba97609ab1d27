"""Local stand-in for the OpenAI HTTP API (httpx.MockTransport handler) used by the drivers."""

import asyncio
import json
import time

import httpx

LLM_MODEL = "gpt-4o-mini-2024-07-18"
STT_MODEL = "whisper-1"
TTS_MODEL = "gpt-4o-mini-tts"
IN_RATE = 16000
OUT_RATE = 24000

USER_LINES = [
    "Hi, I'd like to check the status of my order.",
    "It's order number four five seven two.",
    "Can you change the delivery address?",
    "Great, thanks. What's the delivery window?",
    "Okay, that's all for today.",
]
BOT_LINES = [
    "Sure, I can help with that. Could you give me your order number?",
    "Thanks. Order 4572 is packed and ships tomorrow morning.",
    "Yes, I've updated the delivery address on your order.",
    "Delivery is expected between nine and noon on Thursday.",
    "You're welcome. Have a great day!",
]


class FakeOpenAI:
    """Local stand-in for api.openai.com, used as an httpx transport."""

    def __init__(self, error_turn=None, tts_audio=True):
        self.llm_calls = 0
        self.stt_calls = 0
        self.error_turn = error_turn

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/audio/transcriptions"):
            self.stt_calls += 1
            await asyncio.sleep(0.12)
            text = USER_LINES[(self.stt_calls - 1) % len(USER_LINES)]
            return httpx.Response(200, json={"text": text, "language": "english", "duration": 1.0})
        if path.endswith("/chat/completions"):
            self.llm_calls += 1
            n = self.llm_calls
            if self.error_turn is not None and n == self.error_turn:
                await asyncio.sleep(0.05)
                return httpx.Response(
                    500,
                    json={"error": {"message": "The server had an error while processing your request.",
                                    "type": "server_error", "code": None}},
                    headers={"x-request-id": f"req_err_{n}"},
                )
            body = json.loads(request.content)
            prompt_tokens = 40 + 12 * len(body.get("messages", []))
            text = BOT_LINES[(n - 1) % len(BOT_LINES)]
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream", "x-request-id": f"req_{n}"},
                content=self._sse(n, text, prompt_tokens),
            )
        if path.endswith("/audio/speech"):
            body = json.loads(request.content)
            nchars = len(body.get("input", ""))
            return httpx.Response(200, headers={"content-type": "audio/pcm"}, content=self._pcm(nchars))
        return httpx.Response(404, json={"error": {"message": f"no route {path}"}})

    async def _sse(self, n, text, prompt_tokens):
        cid = f"chatcmpl-drv{n:04d}"
        created = int(time.time())
        words = text.split(" ")

        def chunk(delta, finish=None, usage=None, choices=True):
            c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": LLM_MODEL,
                 "system_fingerprint": "fp_0ba0d124f1",
                 "choices": ([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                             if choices else []),
                 "usage": usage}
            return ("data: " + json.dumps(c) + "\n\n").encode()

        await asyncio.sleep(0.35)  # time to first token
        yield chunk({"role": "assistant", "content": ""})
        for i, w in enumerate(words):
            await asyncio.sleep(0.01)
            yield chunk({"content": (w if i == 0 else " " + w)})
        yield chunk({}, finish="stop")
        completion_tokens = max(1, int(len(words) * 1.3))
        yield chunk(None, choices=False, usage={
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}})
        yield b"data: [DONE]\n\n"

    async def _pcm(self, nchars):
        await asyncio.sleep(0.15)  # TTS time to first byte
        # ~30 ms of audio per character, capped at 2 s, silence at 24 kHz 16-bit mono
        total = min(int(OUT_RATE * 2 * 0.03 * nchars), OUT_RATE * 2 * 2)
        chunk = 4800
        sent = 0
        while sent < total:
            yield b"\x00" * min(chunk, total - sent)
            sent += chunk
            await asyncio.sleep(0.005)

    def client(self, **kw):
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle), **kw)
