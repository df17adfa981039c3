"""tls.py - a test CA and server certificates signed by it, made with the openssl CLI."""

import os

from sqtest.proc import check, need_tool, run_bounded


def _openssl(args, cwd):
    rc, out, err = run_bounded([need_tool("openssl")] + args, 60, cwd=cwd)
    check(rc == 0, "openssl %s failed: %s" % (args[0], err[-1000:]))


def make_ca(d, name="sentryq test CA"):
    """A self-signed CA in d: (ca.pem, ca.key)."""
    _openssl(["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=" + name,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    return os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")


def make_server_cert(d, stem, sans, cn="localhost"):
    """A server certificate signed by d/ca.pem for sans (e.g. "IP:127.0.0.1,DNS:localhost")."""
    with open(os.path.join(d, stem + ".ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n" % sans)
    _openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", stem + ".key", "-out", stem + ".csr", "-subj", "/CN=" + cn], d)
    _openssl(["x509", "-req", "-in", stem + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-CAcreateserial", "-out", stem + ".pem", "-days", "2", "-extfile", stem + ".ext"], d)
    return os.path.join(d, stem + ".pem"), os.path.join(d, stem + ".key")
