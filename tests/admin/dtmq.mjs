// dtmq.mjs — starts and stops the dtmq under test for the admin page's
// browser test (SQLite in a fresh temporary directory, Kafka off, an admin
// token, short retry intervals) and calls its HTTP API from Node.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A free TCP port on 127.0.0.1.
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export class Dtmq {
  constructor(bin, token) {
    this.bin = bin;
    this.token = token;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dtmq-admin-'));
    this.logPath = path.join(this.dir, 'dtmq.log');
    this.proc = null;
    this.exit = null; // {code, signal} once it exited
  }

  async start() {
    this.port = await freePort();
    this.base = `http://127.0.0.1:${this.port}`;
    const log = fs.openSync(this.logPath, 'a');
    const args = ['--http-host', '127.0.0.1', '--http-port', String(this.port),
      '--store', `sqlite:${path.join(this.dir, 'dtmq.db')}`, '--kafka', 'off',
      '--admin-token', this.token, '--retry-interval', '1', '--retry-interval-max', '2',
      '--trans-cron-interval', '1', '--timeout-to-fail', '600', '--request-timeout', '2'];
    this.proc = spawn(this.bin, args, { cwd: this.dir, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.proc.once('error', (e) => {
        this.exit = { code: -1, signal: null, error: e };
        resolve(this.exit);
      });
    });
    for (let i = 0; i < 300; i++) {
      if (this.exit) break;
      try {
        const resp = await fetch(`${this.base}/api/ping`);
        if (resp.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`dtmq did not start (${JSON.stringify(this.exit)}): ${this.log().slice(-2000)}`);
  }

  // SIGTERM, then waits; returns the exit code (128+n when killed by signal n).
  async stop(timeoutMs = 30000) {
    if (!this.proc) return null;
    if (!this.exit) this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const { code, signal } = await this.exited;
    clearTimeout(timer);
    return code ?? 128 + (os.constants.signals[signal] || 0);
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  cleanup() {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  // {status, headers, body (parsed JSON or the text)}; with the token unless auth is false.
  async call(method, route, body, { auth = true } = {}) {
    const headers = {};
    if (auth) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const resp = await fetch(this.base + route, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // leave the text
    }
    return { status: resp.status, headers: resp.headers, body: parsed };
  }

  // The transaction and branches of /api/dtmsvr/query, ext_data parsed into .ext.
  async query(gid) {
    const { status, body } = await this.call('GET', `/api/dtmsvr/query?gid=${encodeURIComponent(gid)}`);
    if (status !== 200 || !body.transaction) throw new Error(`query ${gid}: ${status} ${JSON.stringify(body)}`);
    const t = body.transaction;
    return { t, ext: t.ext_data ? JSON.parse(t.ext_data) : {}, branches: body.branches };
  }

  // Polls until pred(query result) holds; throws after timeoutMs.
  async waitFor(gid, pred, what, timeoutMs = 20000) {
    const deadline = Date.now() + timeoutMs;
    let last = null;
    while (Date.now() < deadline) {
      last = await this.query(gid);
      if (pred(last)) return last;
      await sleep(200);
    }
    throw new Error(`${gid}: not ${what} within ${timeoutMs} ms (status ${last && last.t.status})`);
  }
}
