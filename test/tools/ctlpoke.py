#!/usr/bin/env python3
"""Talks to a relocfs control socket the way relocctl would not.

usage:
  ctlpoke.py SOCK send [--hex HEX | --text TEXT | --repeat BYTE N]
                       [--shut] [--hold S]
      connect, send the bytes (--text: Python escapes such as \\t, \\n and
      \\x00 are decoded), with --shut shut the writing side down, with
      --hold wait S seconds, then read the reply until the daemon closes
      and print it: "reply: " and the bytes, non-printables escaped.
      Exit 0 once a reply (possibly empty) was read; 3 if the connection
      failed (the error is printed).
  ctlpoke.py SOCK flood N HOLDFILE
      open up to N connections that never send a byte (a connect that the
      full backlog would block is given up), print "opened K", keep them
      until HOLDFILE exists (at most 120 s), then read what each was sent
      without waiting, close them all, and print "replies R errors E" where
      E counts replies starting "error\\t".
"""
import os
import socket
import sys
import time


def escape(b):
    return b.decode("utf-8", "backslashreplace").encode("unicode_escape").decode("ascii")


def connect(path, blocking=True):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if not blocking:
        s.setblocking(False)
    s.connect(path)
    return s


def cmd_send(path, args):
    data, shut, hold = b"", False, 0.0
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--hex":
            data = bytes.fromhex(args[i + 1]); i += 2
        elif a == "--text":
            data = args[i + 1].encode("latin-1").decode("unicode_escape").encode("latin-1"); i += 2
        elif a == "--repeat":
            data = args[i + 1].encode("latin-1").decode("unicode_escape").encode("latin-1") * int(args[i + 2]); i += 3
        elif a == "--shut":
            shut = True; i += 1
        elif a == "--hold":
            hold = float(args[i + 1]); i += 2
        else:
            print("ctlpoke: unknown argument %r" % a, file=sys.stderr)
            return 2
    try:
        s = connect(path)
    except OSError as e:
        print("connect: %s" % e)
        return 3
    s.settimeout(60)
    sent_err = None
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
    except OSError as e:
        sent_err = e    # the daemon closed early (a request too long): read its reply
    if hold:
        time.sleep(hold)
    reply = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            reply += b
    except OSError as e:
        if not reply:
            print("recv: %s (send: %s)" % (e, sent_err))
            return 3
    s.close()
    print("reply: " + escape(reply))
    return 0


def cmd_flood(path, n, holdfile):
    conns = []
    for _ in range(n):
        try:
            conns.append(connect(path, blocking=False))
        except BlockingIOError:
            break
        except OSError as e:
            print("connect: %s" % e)
            break
    print("opened %d" % len(conns), flush=True)
    deadline = time.time() + 120
    while not os.path.exists(holdfile) and time.time() < deadline:
        time.sleep(0.05)
    replies = errors = 0
    for s in conns:
        try:
            b = s.recv(4096)
            if b:
                replies += 1
                if b.startswith(b"error\t"):
                    errors += 1
        except OSError:
            pass
        s.close()
    print("replies %d errors %d" % (replies, errors), flush=True)
    return 0


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, mode, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    if mode == "send":
        return cmd_send(path, rest)
    if mode == "flood" and len(rest) == 2:
        return cmd_flood(path, int(rest[0]), rest[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
