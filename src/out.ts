// Lines for a person on stdout, from a process that must go on after its
// reader has gone: on Ctrl-C of `npm start | tee start.log` the terminal
// signals tee as well, and a write to the closed pipe (EPIPE) would otherwise
// end `npm start` before it stops the local cluster.

export function printer(stream: NodeJS.WriteStream): (line?: string) => void {
  let closed = false;
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    closed = true;
  });
  return (line = '') => {
    if (!closed && stream.writable) stream.write(`${line}\n`);
  };
}
