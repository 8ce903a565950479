/** Stopping long-running commands (replicate, tail) cleanly on SIGTERM or SIGINT. */
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
 * Resolves when a write to `stream` fails because its reader went away (`tail … | head -2`): a pipe
 * gives no sign of that until the next write, which then fails with EPIPE.
 */
export function readerGone(stream: NodeJS.WritableStream): { gone: Promise<void>; readonly closed: boolean; dispose(): void } {
  let closed = false;
  let onError = (_err: NodeJS.ErrnoException): void => undefined;
  const gone = new Promise<void>((resolveGone) => {
    onError = (err) => {
      if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') return;
      closed = true;
      resolveGone();
    };
    stream.on('error', onError);
  });
  return {
    gone,
    get closed() {
      return closed;
    },
    dispose: () => void stream.off('error', onError),
  };
}
