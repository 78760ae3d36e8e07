#!/usr/bin/env python3
"""A webhook receiver for tests: appends one JSON line per request it gets to
OUT ({"path", "content_type", "authorization", "body"}) and answers 200, or
STATUS when given. Writes the port it listens on (127.0.0.1) to PORTFILE.
With RECEIVER_TLS_CERT and RECEIVER_TLS_KEY set it serves HTTPS with them.

usage: webhook_receiver.py OUT PORTFILE [PORT] [STATUS]
"""
import http.server
import json
import sys

out, portfile = sys.argv[1], sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
status = int(sys.argv[4]) if len(sys.argv) > 4 else 200


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        with open(out, "a") as f:
            f.write(json.dumps({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                "authorization": self.headers.get("Authorization"),
                                "user_agent": self.headers.get("User-Agent"), "body": parsed}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


srv = http.server.HTTPServer(("127.0.0.1", port), Handler)
import os
if os.environ.get("RECEIVER_TLS_CERT"):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.environ["RECEIVER_TLS_CERT"], os.environ["RECEIVER_TLS_KEY"])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
