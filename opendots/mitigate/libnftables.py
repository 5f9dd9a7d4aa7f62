"""nftables commands run in-process through libnftables (libnftables.so.1), one worker thread per network namespace.

Why: `nft` as a child process (under `nsenter --net` for a namespace) costs ~20 ms of process start-up per change,
most of the time between a mitigation request and the first dropped packet. libnftables is the library `nft` itself
is a thin front-end to: a buffer handed to nft_run_cmd_from_buffer() is parsed and sent to the kernel as ONE netlink
batch, exactly as `nft -f` does, so a batch stays one atomic transaction, and its error buffer holds the very text
`nft` would print on standard error.

Why our own ctypes binding rather than Debian's python3-nftables: that package installs into the system
site-packages, which the virtualenv does not see; making it visible means a venv with every system package on its
path (other versions shadowing ours) or a path hack, for a wrapper of the same six C functions used here. The C API
is small and stable since libnftables 0.9 (nft_ctx_new, nft_ctx_buffer_output/error, nft_ctx_output_set_flags,
nft_run_cmd_from_buffer, nft_ctx_get_output_buffer/error_buffer, nft_ctx_free), and binding it ourselves lets the
context live in the thread that entered the namespace.

Namespaces: libnftables talks to the kernel through a netlink socket opened in the network namespace of the thread
that creates the context. A namespace target therefore gets a dedicated thread that did setns(fd, CLONE_NEWNET) once
(Python 3.11 has no os.setns: libc's, through ctypes) and keeps its context; the default namespace gets a thread that
never moved. The calls block, so they never run on the event loop. A worker idle for IDLE_SECONDS ends (its thread
would otherwise keep a deleted namespace alive), and one whose namespace path now names another namespace (deleted
and re-created under the same name) is replaced.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import queue
import threading
from concurrent.futures import Future

log = logging.getLogger(__name__)

LIBRARY_NAME = "libnftables.so.1"
CLONE_NEWNET = 0x40000000
NFT_CTX_DEFAULT = 0
NFT_CTX_OUTPUT_JSON = 1 << 4
IDLE_SECONDS = 30.0


class NftError(Exception):
    """A command libnftables refused: the message is what `nft` prints on standard error."""


class _Api:
    """The few libnftables functions used, with their C signatures."""

    def __init__(self, library: ctypes.CDLL) -> None:
        pointer, text = ctypes.c_void_p, ctypes.c_char_p
        self.new = _function(library.nft_ctx_new, pointer, ctypes.c_uint32)
        self.free = _function(library.nft_ctx_free, None, pointer)
        self.buffer_output = _function(library.nft_ctx_buffer_output, ctypes.c_int, pointer)
        self.buffer_error = _function(library.nft_ctx_buffer_error, ctypes.c_int, pointer)
        self.set_flags = _function(library.nft_ctx_output_set_flags, None, pointer, ctypes.c_uint)
        self.run = _function(library.nft_run_cmd_from_buffer, ctypes.c_int, pointer, text)
        self.output = _function(library.nft_ctx_get_output_buffer, text, pointer)
        self.error = _function(library.nft_ctx_get_error_buffer, text, pointer)


def _function(function: ctypes._CFuncPtr, result: object, *arguments: object) -> ctypes._CFuncPtr:
    function.restype = result
    function.argtypes = arguments
    return function


_api: _Api | None = None
_load_error: str | None = None
_load_lock = threading.Lock()
_fallback_logged = False


def load() -> str | None:
    """None when libnftables is usable in this process, else why not (loaded once)."""
    global _api, _load_error
    with _load_lock:
        if _api is None and _load_error is None:
            try:
                _api = _Api(ctypes.CDLL(LIBRARY_NAME, use_errno=True))
            except (OSError, AttributeError) as error:
                _load_error = f"cannot load {LIBRARY_NAME}: {error}"
        return _load_error


def chosen(backend: str, nft: str) -> bool:
    """Whether a mitigator with BACKEND and nft binary NFT runs its commands here (ValueError: "library" unusable)."""
    global _fallback_logged
    if backend not in ("auto", "library", "process"):
        raise ValueError(f"nftables backend {backend!r}: auto, library or process")
    if backend == "process" or (backend == "auto" and nft != "nft"):
        return False
    reason = load()
    if reason is None:
        return True
    if backend == "library":
        raise ValueError(f"nftables backend library: {reason}")
    if not _fallback_logged:
        _fallback_logged = True
        log.warning("nftables: %s; running an nft process per change instead", reason)
    return False


class _Context:
    """One nft context, used by one thread only."""

    def __init__(self, api: _Api) -> None:
        self._api = api
        self._handle = api.new(NFT_CTX_DEFAULT)
        if not self._handle:
            raise NftError("nft_ctx_new failed")
        if api.buffer_output(self._handle) or api.buffer_error(self._handle):
            api.free(self._handle)
            raise NftError("cannot buffer libnftables output")

    def run(self, command: str, json_output: bool) -> str:
        api, handle = self._api, self._handle
        api.set_flags(handle, NFT_CTX_OUTPUT_JSON if json_output else 0)
        status = api.run(handle, command.encode())
        # Both buffers are read after every command: reading one rewinds it for the next command.
        output = (api.output(handle) or b"").decode(errors="replace")
        error = (api.error(handle) or b"").decode(errors="replace")
        if status != 0:
            raise NftError(error.strip() or f"nft_run_cmd_from_buffer returned {status}")
        return output

    def close(self) -> None:
        self._api.free(self._handle)


_Job = tuple[str, bool, Future]


class _Worker:
    """A thread in one network namespace (None: the process's own) running commands on its own context."""

    def __init__(self, api: _Api, identity: tuple[int, int] | None, namespace_fd: int | None) -> None:
        self.identity = identity
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.running = True
        started: Future[None] = Future()
        self.thread = threading.Thread(
            target=self._serve, args=(api, namespace_fd, started), name="libnftables", daemon=True
        )
        self.thread.start()
        started.result()  # the namespace entered and the context made, or why not

    def _serve(self, api: _Api, namespace_fd: int | None, started: Future[None]) -> None:
        try:
            if namespace_fd is not None:
                _enter_namespace(namespace_fd)
            context = _Context(api)
        except (OSError, NftError) as error:
            self.running = False
            started.set_exception(error)
            return
        started.set_result(None)
        try:
            while True:
                try:
                    command, json_output, future = self.jobs.get(timeout=IDLE_SECONDS)
                except queue.Empty:
                    if _retire(self):
                        return
                    continue
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(context.run(command, json_output))
                except Exception as error:  # the caller gets it; the thread keeps serving
                    future.set_exception(error)
        finally:
            context.close()


def _enter_namespace(namespace_fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        if libc.setns(namespace_fd, CLONE_NEWNET) != 0:
            number = ctypes.get_errno()
            raise OSError(number, f"setns: {os.strerror(number)}")
    finally:
        os.close(namespace_fd)


_workers: dict[tuple[int, int] | None, _Worker] = {}
_workers_lock = threading.Lock()


def _retire(worker: _Worker) -> bool:
    """Take an idle WORKER out of service unless a job arrived meanwhile (jobs are queued under the same lock)."""
    with _workers_lock:
        if not worker.jobs.empty():
            return False
        worker.running = False
        if _workers.get(worker.identity) is worker:
            del _workers[worker.identity]
        return True


def _submit(namespace: str | None, command: str, json_output: bool) -> Future[str]:
    api = _api
    if api is None:
        raise NftError(load() or "libnftables not loaded")
    namespace_fd = None
    identity = None
    if namespace is not None:
        try:
            namespace_fd = os.open(namespace, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            raise NftError(f"cannot open network namespace {namespace}: {error.strerror}") from None
        status = os.fstat(namespace_fd)
        identity = (status.st_dev, status.st_ino)
    future: Future[str] = Future()
    with _workers_lock:
        worker = _workers.get(identity)
        if worker is None or not worker.running:
            descriptor, namespace_fd = namespace_fd, None  # the worker's thread closes it
            try:
                worker = _Worker(api, identity, descriptor)
            except (OSError, NftError) as error:
                raise NftError(f"cannot use network namespace {namespace}: {error}") from None
            _workers[identity] = worker
        worker.jobs.put((command, json_output, future))
    if namespace_fd is not None:
        os.close(namespace_fd)
    return future


async def run(namespace: str | None, command: str, *, json_output: bool = False, timeout: float) -> str:
    """Run COMMAND (nft syntax, or a JSON batch) in NAMESPACE (a path; None: this process's), as one transaction.

    Returns the output `nft` would print (JSON when JSON_OUTPUT); NftError with nft's error text when refused,
    TimeoutError when libnftables did not answer within TIMEOUT seconds."""
    future = _submit(namespace, command, json_output)
    return await asyncio.wait_for(asyncio.wrap_future(future), timeout)


def worker_thread(namespace: str | None) -> int | None:
    """The identifier of the thread serving NAMESPACE (a path; None: this process's), None when there is none."""
    identity = None
    if namespace is not None:
        try:
            status = os.stat(namespace)
        except OSError:
            return None
        identity = (status.st_dev, status.st_ino)
    with _workers_lock:
        worker = _workers.get(identity)
        return worker.thread.ident if worker is not None else None
