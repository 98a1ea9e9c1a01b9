#!/usr/bin/python3
"""The remote shell of the namespace cluster (cluster.sh): what ssh is to a real cluster.

  node_shell.py serve SOCKET         on a node: runs the commands sent to SOCKET on this node
  node_shell.py run SOCKET COMMAND   anywhere: runs COMMAND (a shell command line) on that node

A node's processes live in its own PID namespace, which a process of another node cannot enter,
so the command is started by the node's server, with the caller's stdin, stdout and stderr
(passed over the Unix socket) and a login-like environment (PATH, HOME, USER, SHELL: like ssh,
nothing of the caller's). The caller waits for its exit status; when the node dies the
connection breaks and the caller exits 255, as ssh does; when the caller goes away, the command
gets SIGHUP and then SIGKILL, as under sshd.
"""
import json
import os
import signal
import socket
import struct
import sys
import time

LOGIN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "SHELL": "/bin/sh",
}


def serve_one(conn):
    message, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    if len(fds) != 3:
        sys.exit(1)
    command = json.loads(message.decode())["command"]
    child = os.fork()
    if child == 0:
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.chdir(LOGIN_ENV["HOME"] if os.path.isdir(LOGIN_ENV["HOME"]) else "/")
        os.execve("/bin/sh", ["sh", "-c", command], LOGIN_ENV)
    for fd in fds:
        os.close(fd)
    # the caller closing its end (killed, or its node gone) hangs the command up
    read_end, write_end = os.pipe()
    watcher = os.fork()
    if watcher == 0:
        os.close(read_end)
        conn.recv(1)
        try:
            os.killpg(child, signal.SIGHUP)
        except ProcessLookupError:
            os._exit(0)
        time.sleep(2)
        try:
            os.killpg(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os._exit(0)
    _, status = os.waitpid(child, 0)
    os.kill(watcher, signal.SIGKILL)
    os.waitpid(watcher, 0)
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code
    try:
        conn.sendall(struct.pack("!i", code))
    except OSError:
        pass


def serve(path):
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    server.bind(path)
    server.listen(64)
    while True:
        conn, _ = server.accept()
        if os.fork() == 0:
            server.close()
            serve_one(conn)
            os._exit(0)
        conn.close()
        while True:  # reap the finished connections
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break


def run(path, command):
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError as error:
        print(f"node_shell: {path}: {error.strerror} (is the node up?)", file=sys.stderr)
        return 255
    message = json.dumps({"command": command}).encode()
    socket.send_fds(conn, [message], [0, 1, 2])
    status = b""
    while len(status) < 4:
        try:
            part = conn.recv(4 - len(status))
        except OSError:
            part = b""
        if not part:
            print(f"node_shell: connection to {path} lost", file=sys.stderr)
            return 255
        status += part
    return struct.unpack("!i", status)[0]


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "run":
        sys.exit(run(sys.argv[2], " ".join(sys.argv[3:])))
    print(__doc__, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
