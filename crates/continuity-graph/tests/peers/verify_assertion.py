"""Independent check of a client assertion with PyJWT + cryptography.

Usage: verify_assertion.py CERT_PEM AUDIENCE CLIENT_ID ALG < assertion
Verifies the signature with the certificate's public key, exp/nbf/iat against
this machine's time, aud and iss, and the header as Entra ID expects it.
Prints "ok" or the reason and exits 1.
"""
import base64
import sys
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> int:
    cert_path, audience, client_id, alg = sys.argv[1:5]
    token = sys.stdin.read().strip()
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "JWT" or header.get("alg") != alg:
        print(f"bad header {header}")
        return 1
    if alg == "PS256":
        want = {"x5t#S256": b64url(cert.fingerprint(hashes.SHA256()))}
    else:
        want = {"x5t": b64url(cert.fingerprint(hashes.SHA1()))}
    thumbs = {k: v for k, v in header.items() if k.startswith("x5t")}
    if thumbs != want:
        print(f"thumbprint header {thumbs} != {want}")
        return 1
    try:
        claims = jwt.decode(
            token,
            cert.public_key(),
            algorithms=[alg],
            audience=audience,
            issuer=client_id,
            options={"require": ["exp", "nbf", "iat", "aud", "iss", "sub", "jti"]},
        )
    except jwt.PyJWTError as e:
        print(f"refused: {type(e).__name__}: {e}")
        return 1
    if claims["sub"] != client_id:
        print("sub != client id")
        return 1
    uuid.UUID(claims["jti"])
    if not 300 <= claims["exp"] - claims["nbf"] <= 600:
        print(f"lifetime {claims['exp'] - claims['nbf']} s outside 5-10 min")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
