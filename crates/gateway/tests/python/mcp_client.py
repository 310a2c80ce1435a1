"""The official MCP Python SDK's client against Nexus's `/mcp` server (streamable HTTP).

Reads NEXUS_BASE, NEXUS_KEY (the demo tenant's) and NEXUS_OTHER_KEY (another tenant's); prints
one JSON object of what it saw.
"""

import asyncio
import json
import os

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

URL = os.environ["NEXUS_BASE"] + "/mcp"


async def session(key, work):
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0)) as http:
        async with streamable_http_client(URL, http_client=http) as (read, write):
            async with ClientSession(read, write) as s:
                init = await s.initialize()
                return await work(s, init)


async def main():
    seen = {}

    async def demo(s, init):
        seen["server"] = init.server_info.name
        seen["protocol"] = init.protocol_version
        listed = await s.list_tools()
        seen["tools"] = [t.name for t in listed.tools]
        seen["read_only"] = {t.name: bool(t.annotations and t.annotations.read_only_hint) for t in listed.tools}
        found = await s.call_tool("knowledge_search", {"query": "ledger seals", "namespace": "handbook"})
        seen["search_error"] = found.is_error
        seen["search"] = found.structured_content
        run = await s.call_tool("run_task", {"task": "What is the ledger?"})
        seen["run_error"] = run.is_error
        seen["run"] = run.structured_content
        chain = run.structured_content["chain_id"]
        status = await s.call_tool("chain_status", {"chain_id": chain})
        seen["status"] = status.structured_content
        seen["chain_id"] = chain
        for _ in range(50):
            # The first entry of the tenant's log; its checkpoint is signed within a second.
            proof = await s.call_tool("ledger_proof", {"index": 0})
            if not proof.is_error:
                break
            await asyncio.sleep(0.2)
        seen["proof_error"] = proof.is_error
        seen["proof"] = proof.structured_content if not proof.is_error else proof.content[0].text
        bad = await s.call_tool("knowledge_search", {})
        seen["bad_error"] = bad.is_error
        seen["bad_text"] = bad.content[0].text
        try:
            await s.call_tool("no_such_tool", {})
            seen["unknown_tool"] = "accepted"
        except Exception as error:  # the SDK raises the JSON-RPC error
            seen["unknown_tool"] = str(error)

    await session(os.environ["NEXUS_KEY"], demo)

    async def other(s, init):
        status = await s.call_tool("chain_status", {"chain_id": seen["chain_id"]})
        seen["other_tenant_error"] = status.is_error
        seen["other_tenant_text"] = status.content[0].text

    await session(os.environ["NEXUS_OTHER_KEY"], other)
    print(json.dumps(seen))


asyncio.run(main())
