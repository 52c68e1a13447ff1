"""The OpenAPI description: security schemes, real errors and models; /docs offline; and a
bounded schemathesis run against the running service that must find nothing."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from tests.integration.harness import Service

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


async def spec_of(service: Service) -> dict[str, Any]:
    status, spec = await service.request("GET", "/openapi.json", None)
    assert status == 200
    result: dict[str, Any] = spec
    return result


async def test_the_description_declares_keys_scopes_and_real_errors(service: Service) -> None:
    spec = await spec_of(service)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    assert schemes["mailjetEvents"]["scheme"] == "basic"
    paths = spec["paths"]
    queue = paths["/queue"]["post"]
    assert queue["security"] == [{"apiKey": ["send"]}]
    assert {"202", "400", "401", "403", "409", "413", "422"} <= set(queue["responses"])
    assert queue["responses"]["403"]["content"]["application/json"]["schema"] == ERROR_REF
    assert paths["/status/{job_id}"]["get"]["security"] == [{"apiKey": ["read"]}]
    assert "404" in paths["/status/{job_id}"]["get"]["responses"]
    assert paths["/webhooks"]["get"]["security"] == [{"apiKey": ["webhooks"]}]
    assert {"400", "401", "503"} <= set(paths["/events"]["post"]["responses"])
    ready = paths["/readyz"]["get"]["responses"]
    assert {"200", "503"} <= set(ready), ready
    assert ready["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/NotReady")
    for path, operations in paths.items():
        for method, operation in operations.items():
            names = [p["name"].lower() for p in operation.get("parameters", [])]
            assert "authorization" not in names, (method, path)
            if path not in ("/livez", "/readyz"):  # every other route needs the database
                assert "503" in operation["responses"], (method, path)
            ok = [c for c in operation["responses"] if c.startswith("2")]
            assert ok, (method, path)
            for code in ok:
                if code != "204":
                    assert operation["responses"][code].get("content"), (method, path, code)
    email = spec["components"]["schemas"]["EmailRequest"]["properties"]
    assert email["to"]["maxItems"] == 50 and email["subject"]["anyOf"][0]["maxLength"] == 255
    assert email["subject"]["pattern"] == "^[^\\r\\n\\u0000]*$"


async def test_docs_work_offline(service: Service) -> None:
    async with service.http.get(service.url + "/docs") as answer:
        assert answer.status == 200
        page = await answer.text()
    assert "cdn" not in page.lower() and "https://" not in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        assert f"/docs/assets/{asset}" in page
        async with service.http.get(f"{service.url}/docs/assets/{asset}") as answer:
            assert answer.status == 200, asset
            assert len(await answer.read()) > 100
    assert (await service.request("GET", "/redoc", None))[0] == 404


async def test_schemathesis_finds_nothing(service: Service, tmp_path: Path) -> None:
    key = await service.create_app()
    await service.queue(
        key,
        {
            "from": {"email": "a@shop.example"},
            "to": [{"email": "b@example.org"}],
            "subject": "s",
            "text": "t",
        },
    )
    cli = Path(sys.executable).with_name("schemathesis")
    proc = await asyncio.create_subprocess_exec(
        str(cli),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{service.url}/openapi.json",
        "--checks",
        "all",
        # An address's suppression history outlives its entry (what it is kept for), and
        # the stateful phase takes `/suppressions/{email}/history` for the deleted entry.
        "--exclude-checks",
        "use_after_free",
        "--max-examples",
        "6",
        "--seed",
        "15",
        "--request-timeout",
        "10",
        "--no-color",
        "-H",
        f"Authorization: Bearer {key}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=150)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-40000:]
