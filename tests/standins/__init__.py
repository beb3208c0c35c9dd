"""Local stand-ins of chat platforms' servers (aiohttp on 127.0.0.1) that the real client
libraries talk to over real sockets; see ``../shared/docs/platform-standins.md``."""
