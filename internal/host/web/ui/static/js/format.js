// format.js — how figures, times and states read on the page.

const IEC = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

// bytes renders a byte count in binary units ("1.5 GiB").
export function bytes(n) {
  if (n == null || Number.isNaN(n)) return '-';
  let v = Number(n);
  let i = 0;
  while (Math.abs(v) >= 1024 && i < IEC.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${IEC[i]}`;
}

// mib renders a MiB count ("2 GiB", "512 MiB").
export function mib(n) {
  return n ? bytes(n * 1024 * 1024) : '-';
}

// duration renders milliseconds ("850ms", "12.3s", "2m05s", "1h02m").
export function duration(ms) {
  if (ms == null || ms < 0 || Number.isNaN(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

// isZeroTime: Go's zero time, or nothing.
export function isZeroTime(t) {
  return !t || t.startsWith('0001-01-01');
}

// age renders how long ago an RFC 3339 time was ("5m", "3h", "2d").
export function age(t, now = Date.now()) {
  if (isZeroTime(t)) return '-';
  const s = Math.max(0, (now - Date.parse(t)) / 1000);
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

// when renders a time for a person in the page's locale.
export function when(t) {
  if (isZeroTime(t)) return '-';
  return new Date(t).toLocaleString();
}

const UNITS = { '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4 };

// parseSize reads "16GiB", "512 MiB", "2048" (in plainUnit bytes) into
// bytes, or throws an Error whose message says how to write it. It reads
// what the CLI's sizes read: whole numbers and B, KiB, MiB, GiB, TiB (and
// the decimal KB, MB, GB, TB).
export function parseSize(str, plainUnit = 1) {
  const t = String(str).trim();
  const m = /^(\d+)\s*([A-Za-z]*)$/.exec(t);
  if (!m) {
    if (/^\d+\.\d*/.test(t)) throw new Error(`"${t}" has a fraction: write a whole number of a smaller unit, e.g. 1536MiB instead of 1.5GiB`);
    throw new Error(`"${t}" is not a size: write it like 8GiB or 512MiB`);
  }
  const unit = m[2].toLowerCase();
  const mult = unit === '' ? plainUnit : UNITS[unit];
  if (!mult) throw new Error(`"${t}" has unknown unit "${m[2]}": use MiB, GiB or TiB`);
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(n)) throw new Error(`"${t}" is too large`);
  return n;
}

// splitWords splits a command line into argv as a POSIX shell would for
// plain words, quotes ('…', "…") and backslash escapes; no expansion. It
// throws on an unclosed quote.
export function splitWords(line) {
  const out = [];
  let cur = '';
  let inWord = false;
  let q = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q === "'") {
      if (c === "'") q = '';
      else cur += c;
    } else if (q === '"') {
      if (c === '"') q = '';
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) cur += line[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      q = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (q) throw new Error(`the command has an unclosed ${q} quote`);
  if (inWord) out.push(cur);
  return out;
}

// STATE_MARKS give each state a mark, so it reads without colour too.
const STATE_MARKS = {
  running: '●', paused: '⏸', creating: '◐', deleting: '◐', stopped: '○', succeeded: '✓', failed: '✗', canceled: '⊘', exited: '■', lost: '?', ready: '✓', unmanaged: '◇',
  ok: '✓', warn: '!', fail: '✗', skip: '–',
};

// stateLabel is the text of a state badge: its mark and its name.
export function stateLabel(state) {
  return `${STATE_MARKS[state] || '•'} ${state || 'unknown'}`;
}
