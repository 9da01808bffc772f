"""The host agent: the only part of jailadmin that needs root (DESIGN.md, 3a).

Nothing here imports Django or any jails module other than jails.fail2ban, so the agent
also runs on a fail2ban host's system python3 (`python3 -I -m jails.agent`, or the zipapp).
"""

AGENT_NAME = "jailadmin-agent"
AGENT_VERSION = "1.0"
# The wire protocol's version (jails/agent/protocol.py): the handshake names it, and an
# agent refuses a client that speaks another one rather than guess.
PROTOCOL_VERSION = 1
