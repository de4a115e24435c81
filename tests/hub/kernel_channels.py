"""A notebook's code cells run in a kernel of a Jupyter server, over the kernel's websocket.

This is what JupyterLab does when a learner runs a lesson cell by cell, without the
browser: :func:`start_kernel` asks the server's REST API for a kernel, :class:`KernelChannels`
opens the kernel's ``channels`` websocket and sends one ``execute_request`` per code cell,
in order, and collects what the cell showed, as a frontend would keep it (streams, results,
displays, errors; ``clear_output`` honoured). The outputs have the shape of nbformat's, so
they compare with those of a notebook run by nbclient.

Messages use the server's default websocket protocol: JSON text frames, and for a message
that carries binary buffers (a widget's image, say) one binary frame whose first bytes say
where the JSON part ends.
"""

from __future__ import annotations

import json
import re
import struct
import time
import uuid
from dataclasses import dataclass, field

import requests
import websocket

CELL_TIMEOUT_S = 300  # the slowest lesson cell on a busy 2-core machine, with a full cache
TIMING = re.compile(r"\b\d+(?:\.\d+)? ?(?:s|ms|min|it/s|s/it)\b|\b\d+:\d\d\b")
WIDGET_IDS = re.compile(r"IPY_MODEL_|model_id")


@dataclass
class CellRun:
    """What one code cell showed: ``index`` in the notebook, its source, its outputs
    (nbformat-shaped dicts) and ``status`` (``ok`` or ``error``) from the kernel's reply."""

    index: int
    source: str
    outputs: list[dict] = field(default_factory=list)
    status: str = "ok"

    @property
    def errors(self) -> list[str]:
        """Each error the cell raised, as ``Name: value``."""
        return [f"{o['ename']}: {o['evalue']}" for o in self.outputs if o["output_type"] == "error"]


def start_kernel(server_url: str, token: str, kernel_name: str = "python3") -> str:
    """Start a kernel on the Jupyter server at ``server_url`` (e.g. ``.../user/ada``) and
    return its id."""
    reply = requests.post(f"{server_url}/api/kernels", json={"name": kernel_name},
                          headers={"Authorization": f"token {token}"}, timeout=60)
    reply.raise_for_status()
    return reply.json()["id"]


def shut_down_kernel(server_url: str, token: str, kernel_id: str) -> None:
    """Ask the server to end the kernel (it may already be gone)."""
    requests.delete(f"{server_url}/api/kernels/{kernel_id}",
                    headers={"Authorization": f"token {token}"}, timeout=60)


def _decode_binary(frame: bytes) -> dict:
    """The JSON part of a binary frame: a count ``n`` and ``n`` offsets (big-endian 32-bit),
    then the message at the first offset and its buffers at the others."""
    (count,) = struct.unpack_from("!I", frame, 0)
    offsets = struct.unpack_from(f"!{count}I", frame, 4)
    end = offsets[1] if count > 1 else len(frame)
    return json.loads(frame[offsets[0]:end].decode("utf-8"))


class KernelChannels:
    """The websocket of one running kernel; ``run_cell`` executes code and returns what it
    showed. Use as a context manager, which closes the socket."""

    def __init__(self, server_url: str, token: str, kernel_id: str, username: str):
        ws_url = server_url.replace("http://", "ws://", 1)
        self.session = uuid.uuid4().hex
        self.username = username
        self.socket = websocket.create_connection(
            f"{ws_url}/api/kernels/{kernel_id}/channels?session_id={self.session}",
            header=[f"Authorization: token {token}"], timeout=CELL_TIMEOUT_S)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.socket.close()

    def _send(self, channel: str, msg_type: str, content: dict) -> str:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": msg_type, "session": self.session,
                  "username": self.username, "version": "5.3",
                  "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.socket.send(json.dumps({"header": header, "parent_header": {}, "metadata": {},
                                     "content": content, "channel": channel, "buffers": []}))
        return msg_id

    def _receive(self, deadline: float) -> dict:
        self.socket.settimeout(max(1.0, deadline - time.monotonic()))
        opcode, frame = self.socket.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise ConnectionError("the server closed the kernel's websocket (did it die?)")
        if opcode == websocket.ABNF.OPCODE_BINARY:
            return _decode_binary(frame)
        return json.loads(frame)

    def wait_ready(self, timeout_s: float = 120) -> None:
        """Wait until the kernel answers a ``kernel_info_request`` (it has started)."""
        deadline = time.monotonic() + timeout_s
        msg_id = self._send("shell", "kernel_info_request", {})
        while True:
            msg = self._receive(deadline)
            if (msg.get("channel") == "shell" and msg["msg_type"] == "kernel_info_reply"
                    and msg["parent_header"].get("msg_id") == msg_id):
                return

    def run_cell(self, index: int, source: str) -> CellRun:
        """Execute ``source`` and collect its outputs until the kernel is idle again and has
        replied; a cell still running after ``CELL_TIMEOUT_S`` raises ``TimeoutError``."""
        deadline = time.monotonic() + CELL_TIMEOUT_S
        msg_id = self._send("shell", "execute_request", {
            "code": source, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True})
        cell = CellRun(index, source)
        replied = idle = clear_pending = False
        while not (replied and idle):
            try:
                msg = self._receive(deadline)
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(f"cell {index} still running after {CELL_TIMEOUT_S} s:\n"
                                   f"{source[:200]}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if msg.get("channel") == "shell" and kind == "execute_reply":
                cell.status, replied = content["status"], True
            elif kind == "status":
                idle = content["execution_state"] == "idle"
            elif kind == "clear_output":
                if content.get("wait"):
                    clear_pending = True
                else:
                    cell.outputs.clear()
            elif kind in ("stream", "execute_result", "display_data", "error"):
                if clear_pending:
                    cell.outputs.clear()
                    clear_pending = False
                cell.outputs.append(_as_output(kind, content))
        return cell


def _as_output(kind: str, content: dict) -> dict:
    """An iopub message's content as an nbformat output."""
    if kind == "stream":
        return {"output_type": "stream", "name": content["name"], "text": content["text"]}
    if kind == "error":
        return {"output_type": "error", "ename": content["ename"],
                "evalue": content["evalue"], "traceback": content["traceback"]}
    return {"output_type": kind, "data": content["data"]}


def code_cells(notebook: dict) -> list[tuple[int, str]]:
    """``(index, source)`` of each code cell of a notebook (nbformat 4, as JSON)."""
    return [(i, "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "code"]


def comparable_lines(outputs: list[dict]) -> list[str]:
    """The lines of a cell's outputs that any run with the same cache shows alike: standard
    output and the plain text of results and displays, without empty lines, lines with a
    timing (``12.3 s``, ``4.5it/s``, ``00:03``) and widget ids."""
    texts: list[str] = []  # consecutive stdout chunks joined: a line may come in two
    stdout_before = False
    for out in outputs:
        is_stdout = out["output_type"] == "stream" and out["name"] == "stdout"
        if is_stdout and stdout_before:
            texts[-1] += out["text"]
        elif is_stdout:
            texts.append(out["text"])
        elif out["output_type"] in ("execute_result", "display_data"):
            texts.append(out["data"].get("text/plain", ""))
        stdout_before = is_stdout
    lines = [line for text in texts for line in text.splitlines()]
    return [line.rstrip() for line in lines
            if line.strip() and not TIMING.search(line) and not WIDGET_IDS.search(line)]


def all_text(outputs: list[dict]) -> str:
    """Every piece of text the outputs hold (both streams, plain text, tracebacks)."""
    parts = []
    for out in outputs:
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] == "error":
            parts += [out["ename"], out["evalue"], *out["traceback"]]
        else:
            parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)
