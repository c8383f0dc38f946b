"""A stand-in for an agency's webhook endpoint, for trying the platform by hand.

    make webhook-echo                          (listens on http://127.0.0.1:9000)
    WEBHOOK_SECRET=whsec_... make webhook-echo (also verifies each signature)

Prints one line per webhook: its type, referral id, status, trace id and whether the signature verified.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Echo(BaseHTTPRequestHandler):
    secret = os.environ.get("WEBHOOK_SECRET", "")

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        verdict = "not checked (set WEBHOOK_SECRET)"
        if self.secret:
            try:
                Webhook(self.secret).verify(body, {k.lower(): v for k, v in self.headers.items()})
                verdict = "valid"
            except WebhookVerificationError as exc:
                verdict = f"INVALID ({exc})"
        try:
            event = json.loads(body)
            data = event.get("data", {})
            summary = f"{event.get('type')} referral={data.get('referral_id')} status={data.get('status')}"
        except ValueError:
            summary = "a body that is not JSON"
        trace_id = (self.headers.get("traceparent") or "---").split("-")[1]
        print(f"{summary} trace={trace_id} signature={verdict}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def main() -> int:
    port = int(os.environ.get("PORT", "9000"))
    print(f"listening on http://127.0.0.1:{port} (Ctrl-C stops)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        HTTPServer(("127.0.0.1", port), Echo).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
