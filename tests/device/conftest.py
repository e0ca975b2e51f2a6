from sshd_fixture import sshd  # noqa: F401  (a real OpenSSH server, the stand-in for a board)
