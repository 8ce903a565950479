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
