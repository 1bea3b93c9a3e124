"""A real SMTP server (aiosmtpd) for the notifier tests.

Listens on 127.0.0.1 on a free port and prints `PORT <n>` on stdout, then one
JSON line per message received: the envelope, whether TLS and AUTH were used,
and the message parsed with Python's `email` package (headers, text and HTML
bodies, and the raw message in base64). Modes: `starttls` (STARTTLS
required, AUTH only after it), `implicit` (TLS from the first byte), `plain`
(no TLS, no AUTH). A recipient whose local part starts with `reject-4` gets
`451 4.3.0`, with `reject-5` gets `550 5.1.1` (how senders map refusals).
Used by the notify and the EWS crates' tests.
Usage: smtp_server.py MODE [CERT KEY USER PASSWORD]
"""

import asyncio
import base64
import email
import email.policy
import json
import logging
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    # aiosmtpd itself sets its deprecated Session.login_data on every AUTH
    # and logs a warning about it each time.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    mode = sys.argv[1]
    cert, key, user, password = (sys.argv[2:6] + [None] * 4)[:4]

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            local = address.split("@", 1)[0]
            if local.startswith("reject-4"):
                return "451 4.3.0 mailbox temporarily unavailable"
            if local.startswith("reject-5"):
                return "550 5.1.1 no such user here"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            raw = envelope.original_content or envelope.content
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            text = msg.get_body(("plain",))
            html = msg.get_body(("html",))
            record = {
                "mail_from": envelope.mail_from,
                "client_port": session.peer[1],
                "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None or mode == "implicit",
                "authenticated": bool(session.authenticated),
                "login": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
                "content_type": msg.get_content_type(),
                "headers": [[k, str(v)] for k, v in msg.items()],
                "text": text.get_content() if text is not None else None,
                "html": html.get_content() if html is not None else None,
                "raw": base64.b64encode(raw).decode(),
            }
            print(json.dumps(record), flush=True)
            return "250 2.0.0 OK queued"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == user
              and auth_data.password.decode() == password)
        # handled=False: aiosmtpd sends the 235 or 535 reply itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    context = None
    if cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)

    def factory():
        if mode == "starttls":
            return SMTP(Handler(), hostname="localhost", tls_context=context, require_starttls=True,
                        authenticator=authenticator, auth_required=True, auth_require_tls=True)
        if mode == "implicit":
            return SMTP(Handler(), hostname="localhost", authenticator=authenticator,
                        auth_required=True, auth_require_tls=False)
        return SMTP(Handler(), hostname="localhost")

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, "127.0.0.1", 0,
                                          ssl=context if mode == "implicit" else None)
        print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
        # End when the test closes our stdin (or dies).
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
