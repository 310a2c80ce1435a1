"""Drives a running Nexus with the official `openai` and `anthropic` Python clients, unchanged
except for base URL and key, and prints one JSON object of what each call saw.

Environment: NEXUS_BASE (http://127.0.0.1:PORT), NEXUS_KEY (nxs_...)."""

import json
import os
import sys

import anthropic
import openai

base = os.environ["NEXUS_BASE"]
key = os.environ["NEXUS_KEY"]
out = {"openai_version": openai.__version__, "anthropic_version": anthropic.__version__}

oa = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
reply = oa.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
)
out["openai_text"] = reply.choices[0].message.content
out["openai_usage"] = reply.usage.total_tokens
out["openai_finish"] = reply.choices[0].finish_reason

stream = oa.chat.completions.create(
    model="anthropic/claude-sonnet-4-5",
    messages=[{"role": "user", "content": "bonjour"}],
    stream=True,
    stream_options={"include_usage": True},
)
text, usage = "", None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage.completion_tokens
out["openai_stream_text"] = text
out["openai_stream_usage"] = usage
out["models"] = sorted(m.id for m in oa.models.list())

try:
    oa.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    out["openai_not_found"] = "no error"
except openai.NotFoundError as error:
    out["openai_not_found"] = error.status_code
try:
    openai.OpenAI(base_url=base + "/v1", api_key="nxs_wrong", max_retries=0).models.list()
    out["openai_auth"] = "no error"
except openai.AuthenticationError as error:
    out["openai_auth"] = error.status_code

an = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
message = an.messages.create(
    model="claude-sonnet-4-5", max_tokens=64, system="be brief", messages=[{"role": "user", "content": "hi"}]
)
out["anthropic_text"] = message.content[0].text
out["anthropic_stop"] = message.stop_reason
out["anthropic_output_tokens"] = message.usage.output_tokens

with an.messages.stream(model="gpt-4o-mini", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
    streamed = "".join(s.text_stream)
    final = s.get_final_message()
out["anthropic_stream_text"] = streamed
out["anthropic_stream_stop"] = final.stop_reason

try:
    an.messages.create(model="gpt-4o-mini", max_tokens=0, messages=[{"role": "user", "content": "x"}])
    out["anthropic_bad_request"] = "no error"
except anthropic.BadRequestError as error:
    out["anthropic_bad_request"] = error.status_code
except anthropic.UnprocessableEntityError as error:
    out["anthropic_bad_request"] = error.status_code

json.dump(out, sys.stdout)
