"""An independent NTLM acceptor for the continuity-ews tests: an HTTP/1.1
keep-alive server in front of pyspnego's NTLM server context, like IIS in
front of EWS. NTLM authenticates a *connection*: the context lives with the
TCP connection, so an AUTHENTICATE message sent on another connection fails.

Usage: python ntlm_acceptor.py   (reads the user file path from NTLM_USER_FILE,
lines DOMAIN:USER:PASSWORD, as pyspnego expects; prints the port, then serves)
GET /stats answers JSON counters.
"""
import base64
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import spnego

STATS = {"connections": 0, "handshakes": 0, "authenticated_requests": 0, "failures": 0, "users": []}
LOCK = threading.Lock()

SOAP_OK = (
    '<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
    '<s:Header><h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" '
    'MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11"/></s:Header>'
    '<s:Body><m:GetFolderResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>'
    '<m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Folders>'
    '<t:Folder><t:FolderId Id="AQMkInbox"/><t:DisplayName>Inbox (%s)</t:DisplayName><t:TotalCount>0</t:TotalCount></t:Folder>'
    '</m:Folders></m:GetFolderResponseMessage></m:ResponseMessages></m:GetFolderResponse></s:Body></s:Envelope>'
)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.ctx = None
        self.user = None
        with LOCK:
            STATS["connections"] += 1

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with LOCK:
            body = json.dumps(STATS).encode()
        self.send(200, body, [("Content-Type", "application/json")])

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.user is not None:
            return self.ok()
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("NTLM "):
            self.ctx = None
            return self.send(401, b"", [("WWW-Authenticate", "NTLM"), ("WWW-Authenticate", "Negotiate")])
        try:
            token = base64.b64decode(auth[5:].strip())
            if self.ctx is None:
                self.ctx = spnego.server(protocol="ntlm")
                challenge = self.ctx.step(token)
                return self.send(401, b"", [("WWW-Authenticate", "NTLM " + base64.b64encode(challenge).decode())])
            self.ctx.step(token)
            if not self.ctx.complete:
                raise RuntimeError("context not complete")
            if not body:
                raise RuntimeError("AUTHENTICATE came without the request body")
            self.user = self.ctx.client_principal
            with LOCK:
                STATS["handshakes"] += 1
                STATS["users"].append(self.user)
            return self.ok()
        except Exception as e:  # a refused handshake is a 401, as IIS answers
            with LOCK:
                STATS["failures"] += 1
            self.ctx = None
            sys.stderr.write("ntlm failure: %r\n" % (e,))
            return self.send(401, b"", [("WWW-Authenticate", "NTLM")])

    def ok(self):
        with LOCK:
            STATS["authenticated_requests"] += 1
        body = (SOAP_OK % self.user.replace("\\", "/")).encode()
        self.send(200, body, [("Content-Type", "text/xml; charset=utf-8")])


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
