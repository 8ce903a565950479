/** Stopping long-running commands (replicate, tail) cleanly on SIGTERM or SIGINT. */
import { closeSync, constants as fsConstants, fstatSync, openSync } from 'node:fs';
import { Socket } from 'node:net';

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/**
 * The first SIGTERM or SIGINT. Until `dispose`, the handlers keep the signals from ending the
 * process; after it, a second signal ends it as usual.
 */
export function stopSignals(): { received: Promise<NodeJS.Signals>; dispose(): void } {
  let dispose = (): void => undefined;
  const received = new Promise<NodeJS.Signals>((resolveSignal) => {
    const handlers = STOP_SIGNALS.map((signal) => [signal, () => (dispose(), resolveSignal(signal))] as const);
    for (const [signal, handler] of handlers) process.on(signal, handler);
    dispose = () => {
      for (const [signal, handler] of handlers) process.off(signal, handler);
    };
  });
  return { received, dispose: () => dispose() };
}

/**
 * Resolves when the reader of `stream` goes away (`tail … | head -2`). A write then fails with
 * EPIPE; and when `stream` is the process's stdout and a pipe, an idle command (nothing to write)
 * notices too, at once, through watchPipeReader.
 */
export function readerGone(stream: NodeJS.WritableStream): { gone: Promise<void>; readonly closed: boolean; dispose(): void } {
  let closed = false;
  let onError = (_err: NodeJS.ErrnoException): void => undefined;
  let unwatch = (): void => undefined;
  const gone = new Promise<void>((resolveGone) => {
    const close = () => {
      closed = true;
      resolveGone();
    };
    onError = (err) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') close();
    };
    stream.on('error', onError);
    if (stream === process.stdout) unwatch = watchPipeReader(1, close);
  });
  return {
    gone,
    get closed() {
      return closed;
    },
    dispose: () => {
      stream.off('error', onError);
      unwatch();
    },
  };
}

/**
 * Calls `onGone` once the last reader of the pipe at `fd` has closed it, without writing to it;
 * returns a function that stops watching. A no-op unless `fd` is a pipe on Linux.
 *
 * A pipe tells its writer that its readers are gone only through poll (POLLERR on the write end)
 * or a failing write, and Node offers neither for a write-only pipe: libuv's read start, which
 * would poll it, refuses a handle opened write-only (ENOTCONN). So the pipe is opened again,
 * write-only and non-blocking, as a new description of its own (/proc/self/fd/N; the process's
 * stdout and its blocking mode are untouched; ENXIO there means no reader is left), and that
 * descriptor is handed to libuv as a stream handle that starts reading without checking the
 * access mode (a TCP handle: process.binding('tcp_wrap'), which Node keeps for compatibility).
 * epoll then reports POLLERR when the readers are gone, and the read libuv tries fails (EBADF:
 * the descriptor is write-only): that failure is the signal. Nothing is ever read or written
 * through it. Where any of this is missing (another OS, a Node without the binding), the caller
 * notices at its next write instead.
 */
export function watchPipeReader(fd: number, onGone: () => void): () => void {
  if (process.platform !== 'linux') return () => undefined;
  let watchFd: number;
  let socket: Socket;
  try {
    if (!fstatSync(fd).isFIFO()) return () => undefined;
    try {
      watchFd = openSync(`/proc/self/fd/${fd}`, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    } catch (err) {
      // a pipe opened for writing with no reader left: it is gone already
      if ((err as NodeJS.ErrnoException).code === 'ENXIO') queueMicrotask(onGone);
      return () => undefined;
    }
    const binding = (process as unknown as { binding(name: string): { TCP: new (type: number) => { open(fd: number): number }; constants: { SOCKET: number } } }).binding('tcp_wrap');
    const handle = new binding.TCP(binding.constants.SOCKET);
    if (handle.open(watchFd) !== 0) {
      closeSync(watchFd);
      return () => undefined;
    }
    socket = new Socket({ handle, readable: true, writable: false } as ConstructorParameters<typeof Socket>[0]);
  } catch {
    return () => undefined;
  }
  let done = false;
  const stop = () => {
    if (done) return;
    done = true;
    socket.destroy(); // closes watchFd
  };
  const gone = () => {
    if (done) return;
    stop();
    onGone();
  };
  socket.on('error', gone);
  socket.on('end', gone);
  socket.on('data', () => undefined); // a write-only descriptor has nothing to read
  socket.unref();
  return stop;
}
