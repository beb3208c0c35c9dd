"""A Telegram Bot API stand-in: the calls this project's bot makes, on ``127.0.0.1``.

Wire format as the real server: every call a POST to ``/bot<token>/<method>`` with urlencoded or
multipart form data (non-string values JSON-encoded in their field), answers
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description"[, "parameters"]}``;
files under ``/file/bot<token>/<file_path>``. ``getUpdates`` is a real long poll honouring
``offset``/``limit``/``timeout``, and answers 409 while a webhook is set; with a webhook set,
``push_update`` POSTs the update there with the secret-token header.

Strict where the real server is: unknown methods are 404 (and recorded in ``unknown``), unknown
chats and reply targets are 400, texts and captions over Telegram's limits are 400, ``getFile``
refuses files over 20 MB. Test-side controls: ``fail_next`` (error injection, 429 with
``retry_after`` included), slow and cut-off downloads, and ``wait_for`` on the call log.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from telegram import TelegramObject, Update

from .common import InjectedFailures, LoopbackServer

GETFILE_LIMIT = 20 * 1024 * 1024
CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096
CHAT_ACTIONS = {
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
}  # fmt: skip


@dataclass
class Call:
    """One request the bot made. ``params`` are the raw form fields (strings)."""

    method: str
    params: dict[str, str]
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    status: int | None = None  # None while the stand-in is still answering (a long poll)

    def json(self, name: str) -> Any:
        return json.loads(self.params[name])

    @property
    def chat_id(self) -> int:
        return int(self.params["chat_id"])

    @property
    def reply_to(self) -> int | None:
        if "reply_parameters" in self.params:
            return int(self.json("reply_parameters")["message_id"])
        if "reply_to_message_id" in self.params:
            return int(self.params["reply_to_message_id"])
        return None

    @property
    def text(self) -> str:
        return self.params.get("text") or self.params.get("caption") or ""


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    size: int  # what getFile and the message declare (may differ from len(data) on purpose)
    chunk_size: int = 64 * 1024  # the download is written in chunks of this size …
    chunk_delay_s: float = 0.0  # … with this pause after each
    cut_after: int | None = None  # close the connection after this many body bytes


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None
    times: int


class TelegramStandIn(LoopbackServer):
    def __init__(
        self,
        token: str = "123456789:AAF-standin-token_for_tests",
        *,
        bot_id: int = 777_000_111,
        username: str = "deepfake_check_bot",
        can_read_all_group_messages: bool = False,
    ) -> None:
        super().__init__()
        self.token = token
        self.bot_user: dict[str, Any] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Deepfake Check",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": can_read_all_group_messages,
            "supports_inline_queries": False,
        }
        self.calls: list[Call] = []
        self.unknown: list[str] = []
        self.abandoned: list[str] = []  # calls whose client hung up before the body arrived
        self.files: dict[str, StoredFile] = {}
        self.chats: dict[int, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.members: dict[tuple[int, int], str] = {}  # (chat, user) -> status
        self.commands: dict[str, list[dict[str, str]]] = {}  # scope type -> commands
        self.webhook: dict[str, Any] | None = None
        self.webhook_deliveries: list[int] = []  # HTTP status of each webhook POST
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._file_ids = itertools.count(1)
        self._failures: InjectedFailures[_Failure] = InjectedFailures()
        self._session: aiohttp.ClientSession | None = None

    # --- server life cycle ----------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.origin}/bot"

    @property
    def file_url(self) -> str:
        return f"{self.origin}/file/bot"

    async def start(self) -> None:
        app = self._new_app()
        app.router.add_post("/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        await self._serve(app)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self._stop_serving()

    # --- test-side: state and actions ------------------------------------------------------------

    def add_file(
        self,
        data: bytes,
        *,
        size: int | None = None,
        name: str = "photo.jpg",
        chunk_size: int = 64 * 1024,
        chunk_delay_s: float = 0.0,
        cut_after: int | None = None,
    ) -> StoredFile:
        n = next(self._file_ids)
        stored = StoredFile(
            file_id=f"FILE{n:04d}-{len(data)}",
            file_unique_id=f"U{n:04d}",
            data=data,
            file_path=f"documents/file_{n}_{name}",
            size=len(data) if size is None else size,
            chunk_size=chunk_size,
            chunk_delay_s=chunk_delay_s,
            cut_after=cut_after,
        )
        self.files[stored.file_id] = stored
        return stored

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        self.members[(chat_id, user_id)] = status

    def fail_next(
        self,
        method: str,
        status: int,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``method`` (``"download"`` for the file route) fail."""
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after}",
                400: "Bad Request",
                500: "Internal Server Error",
                502: "Bad Gateway",
            }.get(status, "Error")
        self._failures.add(method, _Failure(status, description, retry_after, times))

    async def push_update(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an update (``update_id`` assigned) for getUpdates, or POST it to the webhook."""
        payload = {"update_id": next(self._update_ids), **payload}
        problems = unknown_fields(Update.de_json(json.loads(json.dumps(payload)), None))
        assert not problems, f"stand-in built fields PTB does not know: {problems}"
        if self.webhook is None:
            self._updates.append(payload)
            self._changed.set()
            return payload
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {}
        if self.webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
        async with self._session.post(self.webhook["url"], json=payload, headers=headers) as r:
            self.webhook_deliveries.append(r.status)
        return payload

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by a getUpdates offset (Telegram would redeliver them)."""
        return list(self._updates)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(
        self,
        method: str,
        *,
        count: int = 1,
        where: Callable[[Call], bool] | None = None,
        timeout: float = 15.0,  # noqa: ASYNC109 - a test helper's deadline, in the message
    ) -> Call:
        """The ``count``-th call of ``method`` matching ``where`` (waiting for it)."""

        def probe() -> Call | None:
            found = [c for c in self.calls_to(method) if where is None or where(c)]
            return found[count - 1] if len(found) >= count else None

        def failure() -> str:
            seen = [c.method for c in self.calls]
            return f"no {count}x {method} within {timeout}s; calls: {seen}"

        return await self._poll(probe, timeout, failure, every=0.2)

    def replies_to(self, chat_id: int, message_id: int) -> list[Call]:
        """Messages the bot sent in ``chat_id`` replying to ``message_id``."""
        return [
            c
            for c in self.calls
            if c.method in {"sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup"}
            and c.status == 200
            and c.chat_id == chat_id
            and c.reply_to == message_id
        ]

    # --- test-side: payload builders ------------------------------------------------------------

    @staticmethod
    def user(user_id: int = 1001, first_name: str = "Alice") -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": first_name}

    @staticmethod
    def private_chat(user: dict[str, Any]) -> dict[str, Any]:
        return {"id": user["id"], "type": "private", "first_name": user["first_name"]}

    @staticmethod
    def group_chat(chat_id: int = -1001234567890, title: str = "Fact checkers") -> dict[str, Any]:
        return {"id": chat_id, "type": "supergroup", "title": title}

    def message(
        self, chat: dict[str, Any], sender: dict[str, Any], **content: Any
    ) -> dict[str, Any]:
        """A message from ``sender`` in ``chat``, remembered so the bot can reply to it."""
        msg = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
            **content,
        }
        self.chats[chat["id"]] = chat
        self.messages[(chat["id"], msg["message_id"])] = msg
        return msg

    def photo_sizes(self, largest: StoredFile, width: int = 1280, height: int = 960) -> list[Any]:
        """Telegram's list of sizes, largest last; the thumbnails are distinct (tiny) files."""
        sizes = []
        for scale in (0.0703125, 0.25):  # 90 and 320 px wide, as Telegram makes them
            thumb = self.add_file(b"\xff\xd8thumbnail", name="thumb.jpg")
            sizes.append(
                {
                    "file_id": thumb.file_id,
                    "file_unique_id": thumb.file_unique_id,
                    "width": round(width * scale),
                    "height": round(height * scale),
                    "file_size": thumb.size,
                }
            )
        sizes.append(
            {
                "file_id": largest.file_id,
                "file_unique_id": largest.file_unique_id,
                "width": width,
                "height": height,
                "file_size": largest.size,
            }
        )
        return sizes

    @staticmethod
    def document(
        stored: StoredFile,
        mime_type: str | None,
        file_name: str | None,
        *,
        declare_size: bool = True,
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        if declare_size:
            doc["file_size"] = stored.size
        if mime_type is not None:
            doc["mime_type"] = mime_type
        if file_name is not None:
            doc["file_name"] = file_name
        return doc

    def command(
        self,
        chat: dict[str, Any],
        sender: dict[str, Any],
        text: str,
        *,
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        command = text.split()[0]
        content: dict[str, Any] = {
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
        }
        if reply_to is not None:
            content["reply_to_message"] = reply_to
        return self.message(chat, sender, **content)

    # --- the API ----------------------------------------------------------------------------

    async def _not_found(self, request: web.Request) -> web.Response:
        self.unknown.append(f"{request.method} {request.path}")
        return _error(404, "Not Found")

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if unquote(request.match_info["token"]) != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        try:
            params, files = await _read_form(request)
        except ConnectionResetError:  # the client gave up mid-request, as clients may
            self.abandoned.append(method)
            return web.Response(status=499)
        call = Call(method, params, files)
        self._record(call)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            self.unknown.append(method)
            return self._answer(call, _error(404, "Not Found"))
        failure = self._failures.take(method)
        if failure is not None:
            return self._answer(
                call, _error(failure.status, failure.description, failure.retry_after)
            )
        try:
            result = await handler(call, request)
        except _ApiError as exc:
            return self._answer(call, _error(exc.status, exc.description))
        return self._answer(call, web.json_response({"ok": True, "result": result}))

    def _record(self, call: Call) -> None:
        """Calls are logged when they arrive (so a test sees a long poll begin)."""
        self.calls.append(call)
        self._changed.set()

    def _answer(self, call: Call, response: web.Response) -> web.Response:
        call.status = response.status
        self._changed.set()
        return response

    async def _m_getMe(self, call: Call, request: web.Request) -> Any:
        return self.bot_user

    async def _m_getUpdates(self, call: Call, request: web.Request) -> Any:
        if self.webhook is not None:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(call.params.get("offset", "0"))
        limit = int(call.params.get("limit", "100"))
        timeout = float(call.params.get("timeout", "0"))
        if offset:  # confirms every update before it, as Telegram does
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while not self._updates and time.monotonic() < deadline:
            if request.transport is None or request.transport.is_closing():
                return []  # the client gave up (PTB cancels its long poll on stop)
            await self._next_change(0.05)
        return self._updates[:limit]

    async def _m_deleteWebhook(self, call: Call, request: web.Request) -> Any:
        self.webhook = None
        if json.loads(call.params.get("drop_pending_updates", "false")):
            self._updates.clear()
        return True

    async def _m_setWebhook(self, call: Call, request: web.Request) -> Any:
        url = call.params.get("url", "")
        if not url:
            self.webhook = None
            return True
        self.webhook = {"url": url, "secret_token": call.params.get("secret_token")}
        if "allowed_updates" in call.params:
            self.webhook["allowed_updates"] = call.json("allowed_updates")
        return True

    async def _m_getWebhookInfo(self, call: Call, request: web.Request) -> Any:
        return {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    async def _m_setMyCommands(self, call: Call, request: web.Request) -> Any:
        scope = call.json("scope")["type"] if "scope" in call.params else "default"
        self.commands[scope] = call.json("commands")
        return True

    async def _m_sendChatAction(self, call: Call, request: web.Request) -> Any:
        self._chat(call)
        if call.params.get("action") not in CHAT_ACTIONS:
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    async def _m_getChatMember(self, call: Call, request: web.Request) -> Any:
        chat = self._chat(call)
        user_id = int(call.params["user_id"])
        status = self.members.get((chat["id"], user_id), "member")
        user = self.bot_user if user_id == self.bot_user["id"] else self.user(user_id)
        return _member(status, user)

    async def _m_getFile(self, call: Call, request: web.Request) -> Any:
        stored = self.files.get(call.params.get("file_id", ""))
        if stored is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if stored.size > GETFILE_LIMIT:
            raise _ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    async def _m_sendMessage(self, call: Call, request: web.Request) -> Any:
        chat = self._chat(call)
        text = call.params.get("text", "")
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > TEXT_LIMIT:
            raise _ApiError(400, "Bad Request: message is too long")
        self._check_reply(call, chat)
        return self._sent(chat, text=text)

    async def _m_editMessageText(self, call: Call, request: web.Request) -> Any:
        chat = self._chat(call)
        key = (chat["id"], int(call.params.get("message_id", 0)))
        if key not in self.messages or self.messages[key]["from"] != self.bot_user:
            raise _ApiError(400, "Bad Request: message to edit not found")
        text = call.params.get("text", "")
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if self.messages[key].get("text") == text:
            raise _ApiError(400, "Bad Request: message is not modified")
        self.messages[key] = {**self.messages[key], "text": text, "edit_date": int(time.time())}
        return self.messages[key]

    async def _m_sendPhoto(self, call: Call, request: web.Request) -> Any:
        chat = self._chat(call)
        self._check_caption(call.params.get("caption"))
        self._check_reply(call, chat)
        data = self._upload(call, call.params.get("photo", ""), "photo")
        return self._sent(chat, **self._photo_content(data, call.params.get("caption")))

    async def _m_sendDocument(self, call: Call, request: web.Request) -> Any:
        chat = self._chat(call)
        self._check_caption(call.params.get("caption"))
        self._check_reply(call, chat)
        data = self._upload(call, call.params.get("document", ""), "document")
        stored = self.add_file(data, name="document")
        content: dict[str, Any] = {"document": self.document(stored, None, None)}
        return self._sent(chat, **content)

    async def _m_sendMediaGroup(self, call: Call, request: web.Request) -> Any:
        chat = self._chat(call)
        self._check_reply(call, chat)
        media = call.json("media")
        if not 2 <= len(media) <= 10:
            raise _ApiError(400, "Bad Request: wrong number of media in the album")
        group_id = f"MG{next(self._file_ids)}"
        sent = []
        for item in media:
            if item.get("type") != "photo":
                raise _ApiError(400, "Bad Request: unsupported media type in the album")
            self._check_caption(item.get("caption"))
            data = self._upload(call, item["media"], "media")
            content = self._photo_content(data, item.get("caption"))
            sent.append(self._sent(chat, media_group_id=group_id, **content))
        return sent

    # --- helpers ------------------------------------------------------------------------------

    def _chat(self, call: Call) -> dict[str, Any]:
        try:
            chat = self.chats[int(call.params["chat_id"])]
        except (KeyError, ValueError):
            raise _ApiError(400, "Bad Request: chat not found") from None
        return chat

    def _check_reply(self, call: Call, chat: dict[str, Any]) -> None:
        target = call.reply_to
        if target is None or (chat["id"], target) in self.messages:
            return
        params = call.json("reply_parameters") if "reply_parameters" in call.params else {}
        if not params.get("allow_sending_without_reply"):
            raise _ApiError(400, "Bad Request: message to be replied not found")

    @staticmethod
    def _check_caption(caption: str | None) -> None:
        if caption is not None and len(caption) > CAPTION_LIMIT:
            raise _ApiError(400, "Bad Request: message caption is too long")

    @staticmethod
    def _upload(call: Call, ref: str, field_name: str) -> bytes:
        """A file sent with the call: ``attach://<part>`` or the part named like the field."""
        part = ref.removeprefix("attach://") if ref.startswith("attach://") else field_name
        if part not in call.files:
            raise _ApiError(400, f"Bad Request: there is no {field_name} in the request")
        return call.files[part]

    def _photo_content(self, data: bytes, caption: str | None) -> dict[str, Any]:
        stored = self.add_file(data, name="sent.jpg")
        content: dict[str, Any] = {"photo": self.photo_sizes(stored, 512, 512)}
        if caption is not None:
            content["caption"] = caption
        return content

    def _sent(self, chat: dict[str, Any], **content: Any) -> dict[str, Any]:
        return self.message(chat, self.bot_user, **content)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if unquote(request.match_info["token"]) != self.token:
            return _error(401, "Unauthorized")
        path = request.match_info["path"]
        call = Call("download", {"file_path": path})
        self._record(call)
        stored = next((f for f in self.files.values() if f.file_path == path), None)
        failure = self._failures.take("download")
        if failure is not None:
            return self._answer(call, _error(failure.status, failure.description))
        if stored is None:
            return self._answer(call, _error(404, "Not Found"))
        call.status = 200
        data = stored.data
        resp = web.StreamResponse(
            headers={"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"}
        )
        await resp.prepare(request)
        end = len(data) if stored.cut_after is None else min(stored.cut_after, len(data))
        chunk = stored.chunk_size
        for start in range(0, end, chunk):
            await resp.write(data[start : min(start + chunk, end)])
            if stored.chunk_delay_s:
                await asyncio.sleep(stored.chunk_delay_s)
        if stored.cut_after is not None:
            assert request.transport is not None
            request.transport.abort()  # mid-body: the client sees a truncated response
        return resp


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)


async def _read_form(request: web.Request) -> tuple[dict[str, str], dict[str, bytes]]:
    """Form fields and uploaded files of a Bot API call (urlencoded, multipart or empty)."""
    params: dict[str, str] = {}
    files: dict[str, bytes] = {}
    if not request.can_read_body:
        return params, files
    form = await request.post()
    for name, value in form.items():
        if isinstance(value, web.FileField):
            files[name] = value.file.read()
        else:
            params[name] = str(value)
    return params, files


def _member(status: str, user: dict[str, Any]) -> dict[str, Any]:
    if status == "administrator":
        rights = [
            "can_be_edited",
            "is_anonymous",
            "can_manage_chat",
            "can_delete_messages",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_promote_members",
            "can_change_info",
            "can_invite_users",
            "can_post_stories",
            "can_edit_stories",
            "can_delete_stories",
        ]
        return {"status": status, "user": user, **{r: r != "is_anonymous" for r in rights}}
    if status == "creator":
        return {"status": status, "user": user, "is_anonymous": False}
    return {"status": status, "user": user}


def unknown_fields(obj: object, path: str = "update") -> list[str]:
    """Every place in a parsed PTB object where a field was unknown to PTB (``api_kwargs``)."""
    found: list[str] = []
    if isinstance(obj, TelegramObject):
        if obj.api_kwargs:
            found.append(f"{path}: {sorted(obj.api_kwargs)}")
        for name, value in obj._get_attrs(recursive=False).items():
            found += unknown_fields(value, f"{path}.{name}")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            found += unknown_fields(value, f"{path}[{i}]")
    return found
