#!/usr/bin/env python3
"""A loopback stand-in for a Databricks workspace: just what `databricks bundle validate`
asks, so the official CLI can check a generated bundle with no workspace and no account.

    python3 scripts/stub_workspace.py [--port-file FILE] [--log FILE] [--user NAME]

Binds 127.0.0.1 on a free port, prints the port (and writes it to --port-file once it
listens), then serves until killed. Point the CLI at it with
DATABRICKS_HOST=http://127.0.0.1:<port> DATABRICKS_TOKEN=<anything>. Every request is logged
(stderr, and --log as JSON lines); one it does not know is answered 404 the way the
workspace answers, and logged with "known": false, so a new CLI version's new calls show.

Stdlib only: it runs with any python3, inside or outside the project's virtualenv.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("stub_workspace")

DEFAULT_USER = "dev.user@example.com"


class Workspace:
    """The state the stub keeps: the current user and the folders made with mkdirs."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.folders: set[str] = {"/", "/Workspace", "/Workspace/Users",
                                  f"/Workspace/Users/{user}", "/Users", f"/Users/{user}"}

    def me(self) -> dict[str, Any]:
        # the CLI names a service principal (a UUID userName) by its displayName
        display = " ".join(part.capitalize() for part in self.user.split("@")[0].split("."))
        return {"id": "4242424242424242", "userName": self.user, "displayName": display,
                "active": True, "emails": [{"value": self.user, "primary": True}],
                "groups": [{"display": "users", "value": "1"}]}

    def status(self, path: str) -> tuple[int, dict[str, Any]]:
        path = path.rstrip("/") or "/"
        if path in self.folders:
            return 200, {"object_type": "DIRECTORY", "path": path,
                         "object_id": abs(hash(path)) % 10**15}
        return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                     "message": f"Path ({path}) doesn't exist."}

    def mkdirs(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts) + 1):
            self.folders.add("/" + "/".join(parts[:i]))


def make_handler(workspace: Workspace, log_file: Path | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self, code: int, body: bytes, *, known: bool) -> None:
            entry = {"method": self.command, "path": self.path, "status": code,
                     "known": known, "body": body.decode("utf-8", "replace")}
            log.info("%s %s -> %d", self.command, self.path, code)
            if log_file is not None:
                with log_file.open("a") as out:
                    out.write(json.dumps(entry) + "\n")

        def _route(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            code, answer = 200, {}
            known = True
            if (self.command, url.path) == ("GET", "/.well-known/databricks-config"):
                # host metadata, asked by databricks-sdk-go >= 0.126 on every client start;
                # answered as the CLI's own test server (libs/testserver) answers it
                answer = {"oidc_endpoint": f"http://{self.headers.get('Host', '')}/oidc",
                          "workspace_id": "900800700600"}
            elif (self.command, url.path) == ("GET", "/api/2.0/preview/scim/v2/Me"):
                answer = workspace.me()
            elif (self.command, url.path) == ("GET", "/api/2.0/workspace/get-status"):
                code, answer = workspace.status(query.get("path", ""))
            elif (self.command, url.path) == ("POST", "/api/2.0/workspace/mkdirs"):
                workspace.mkdirs(json.loads(body or b"{}").get("path", ""))
            else:
                code, answer = 404, {"error_code": "ENDPOINT_NOT_FOUND",
                                     "message": f"No API found for '{self.command} {url.path}'"}
                known = False
                log.warning("unknown request %s %s", self.command, self.path)
            self._record(code, body, known=known)
            self._answer(code, answer)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _route  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # _record logs each request once, with its answer

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    parser.add_argument("--log", type=Path, help="append each request here as a JSON line")
    parser.add_argument("--user", default=DEFAULT_USER, help="the current user's userName")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="stub_workspace: %(message)s")
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 make_handler(Workspace(args.user), args.log))
    port = server.server_address[1]
    if args.port_file is not None:
        # written whole, then renamed: a reader polling for the file never sees half of it
        partial = args.port_file.with_name(args.port_file.name + ".partial")
        partial.write_text(f"{port}\n")
        os.replace(partial, args.port_file)
    print(port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
