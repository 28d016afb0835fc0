// exec.js — the VM page's exec box: run one command, show its stdout,
// stderr and exit code.
//
// Contract proposed to the web listener (package web), since fetch cannot
// do the Upgrade stream of POST /v1/vms/{name}/exec:
//
//   POST /v1/vms/{name}/exec?wait=true
//   body: api.ExecRequest {"argv": [...], "cwd": "...", "env": ["K=V"]}
//   200:  {"stdout": "...", "stderr": "...", "exit_code": N,
//          "signal": "SIGKILL" (optional),
//          "stdout_truncated": bool, "stderr_truncated": bool (optional)}
//   stdout and stderr are UTF-8 text (invalid bytes replaced), each
//   bounded (the rest dropped, *_truncated set); failures are api.Error.
//
// Until the listener answers that, the box falls back to a session: start
// it with tty=false, read its output over the terminal WebSocket until the
// exit message, then remove it. stdout and stderr then arrive interleaved
// in one pane (the WebSocket's output bytes carry no stream).
//
// Test hooks: #exec-form (inputs [name="argv|cwd|env"]), #exec-submit,
// #exec-stdout, #exec-stderr, #exec-exit (data-exit-code), #exec-note.

import { ApiError, del, enc, post, wsURL } from '../api.js';
import { h, inert, replace, text } from '../dom.js';
import { splitWords } from '../format.js';
import { clearErrors, field, fieldError, formError, showError } from '../forms.js';

const MAX_OUTPUT = 1 << 20; // bytes kept of the fallback's output

// execPanel returns {el} for VM vm.
export function execPanel(vm, signal) {
  const f = {
    argv: h('input', { name: 'argv', type: 'text', required: true, placeholder: 'e.g. uname -a', spellcheck: 'false' }),
    cwd: h('input', { name: 'cwd', type: 'text', placeholder: '/root', spellcheck: 'false' }),
    env: h('input', { name: 'env', type: 'text', placeholder: 'KEY=value KEY2=value', spellcheck: 'false' }),
  };
  const submit = h('button', { type: 'submit', id: 'exec-submit', class: 'primary' }, 'Run');
  const stdout = h('pre', { id: 'exec-stdout', class: 'output', tabindex: 0, 'aria-label': 'stdout' });
  const stderr = h('pre', { id: 'exec-stderr', class: 'output', tabindex: 0, 'aria-label': 'stderr' });
  const exit = h('p', { id: 'exec-exit', role: 'status' });
  const note = h('p', { id: 'exec-note', class: 'muted' });
  const form = h('form', { id: 'exec-form', novalidate: true, 'aria-labelledby': 'exec-h' },
    field('Command', f.argv, { hint: 'split into words as a shell would; run as root' }),
    field('Working directory', f.cwd),
    field('Environment', f.env, { hint: 'KEY=value pairs separated by spaces' }),
    formError('exec-form-error'),
    h('div', { class: 'actions' }, submit));
  const out = h('div', { class: 'exec-out' }, exit, note,
    h('h3', {}, 'stdout'), stdout, h('h3', {}, 'stderr'), stderr);
  const el = h('section', { id: 'exec', 'aria-labelledby': 'exec-h' }, h('h2', { id: 'exec-h' }, 'Run a command'), form, out);

  function show(res) {
    text(stdout, inert(res.stdout || '') + (res.stdout_truncated ? '\n[… more output was dropped …]' : ''));
    text(stderr, inert(res.stderr || '') + (res.stderr_truncated ? '\n[… more output was dropped …]' : ''));
    exit.dataset.exitCode = String(res.exit_code);
    text(exit, `exit code ${res.exit_code}${res.signal ? ` (${res.signal})` : ''}`);
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    const req = {};
    try {
      req.argv = splitWords(f.argv.value);
      if (!req.argv.length) throw new Error('argv is empty: give the command to run');
    } catch (err) {
      showError(form, fieldError('argv', err.message));
      return;
    }
    if (f.cwd.value.trim()) req.cwd = f.cwd.value.trim();
    const env = splitWords(f.env.value);
    if (env.some((kv) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(kv))) {
      showError(form, fieldError('env', 'env: write KEY=value pairs'));
      return;
    }
    if (env.length) req.env = env;
    submit.disabled = true;
    text(exit, 'running…');
    delete exit.dataset.exitCode;
    text(stdout, '');
    text(stderr, '');
    text(note, '');
    try {
      let res;
      try {
        res = await post(`/v1/vms/${enc(vm)}/exec?wait=true`, req, { signal });
      } catch (err) {
        if (!needsFallback(err)) throw err;
        text(note, 'This bangerd has no non-streaming exec: running the command as a session; stdout and stderr are shown together.');
        res = await execAsSession(vm, req, signal);
      }
      show(res);
    } catch (err) {
      if (err.name === 'AbortError') return;
      text(exit, 'not run');
      showError(form, err);
    } finally {
      submit.disabled = false;
    }
  });
  return { el };
}

// needsFallback: the daemon answered that exec must be an Upgrade stream
// (it ignores ?wait), or the listener does not know the endpoint.
function needsFallback(err) {
  if (!(err instanceof ApiError)) return false;
  if (err.status === 404 && err.code !== 'not_found') return true;
  if (err.status === 501 || err.status === 405) return true;
  return err.code === 'invalid_argument' && !err.field && /Upgrade/i.test(err.message);
}

// execAsSession runs req as a pipe session and collects its output until
// it exits, then removes the session.
export async function execAsSession(vm, req, signal) {
  const name = `web-exec-${Math.random().toString(36).slice(2, 8)}`;
  const s = await post(`/v1/vms/${enc(vm)}/sessions`, { name, argv: req.argv, cwd: req.cwd, env: req.env, tty: false }, { signal });
  const chunks = [];
  let size = 0;
  let truncated = false;
  try {
    const end = await new Promise((resolve, reject) => {
      const ws = new WebSocket(wsURL(`/v1/vms/${enc(vm)}/sessions/${enc(s.id)}/terminal`));
      ws.binaryType = 'arraybuffer';
      signal?.addEventListener('abort', () => ws.close(), { once: true });
      let ended = null;
      ws.onmessage = (m) => {
        if (typeof m.data !== 'string') {
          const b = new Uint8Array(m.data);
          if (size + b.length > MAX_OUTPUT) truncated = true;
          else {
            chunks.push(b);
            size += b.length;
          }
          return;
        }
        let msg;
        try {
          msg = JSON.parse(m.data);
        } catch {
          return;
        }
        if (msg.type === 'exit') {
          ended = msg.session;
          ws.close();
        } else if (msg.type === 'error') {
          reject(new ApiError(0, { error: msg.error }));
          ws.close();
        }
      };
      ws.onclose = () => (ended ? resolve(ended) : reject(new Error('the session stream closed before the command ended')));
      ws.onerror = () => {};
    });
    const all = new Uint8Array(size);
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    return { stdout: new TextDecoder().decode(all), stderr: '', exit_code: end.exit_code ?? -1, signal: end.signal, stdout_truncated: truncated };
  } finally {
    await del(`/v1/vms/${enc(vm)}/sessions/${enc(s.id)}`).catch(() => {});
  }
}
