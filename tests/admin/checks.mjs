// checks.mjs — a tiny check counter for the admin page's browser test. Each
// check is a named async function; a thrown error fails it. The run ends with
// a line in the format of the Check framework's summary, which tests/run.sh
// parses: "100%: Checks: N, Failures: F, Errors: E" (a failure is a check that
// threw, an error is a failure outside any check, e.g. in the set-up), and
// failing checks are printed like Check's "file:line:F:suite:name:0: message".

const started = Date.now();
const results = { checks: 0, failures: 0, errors: 0 };

function elapsed() {
  return `${((Date.now() - started) / 1000).toFixed(1)}s`;
}

// Runs one counted check; returns true when it passed. Never throws.
export async function check(name, fn) {
  results.checks++;
  try {
    await fn();
    console.log(`ok    ${name} (${elapsed()})`);
    return true;
  } catch (e) {
    results.failures++;
    const message = String((e && e.message) || e).replace(/\s+/g, ' ');
    console.log(`admin.spec.mjs:0:F:admin:${name}:0: ${message}`);
    return false;
  }
}

// Records an error outside the checks (the run cannot go on as planned).
export function error(what, e) {
  results.errors++;
  const message = String((e && e.stack) || e);
  console.log(`admin.spec.mjs:0:E:admin:${what}:0: ${message.split('\n')[0]}`);
  console.error(message);
}

// Throws with message unless cond holds.
export function expect(cond, message) {
  if (!cond) throw new Error(message);
}

export function expectEqual(actual, wanted, what) {
  const a = JSON.stringify(actual);
  const w = JSON.stringify(wanted);
  if (a !== w) throw new Error(`${what}: got ${a}, wanted ${w}`);
}

// Prints the summary line and returns the process exit status (0: all passed).
export function summary() {
  const { checks, failures, errors } = results;
  const bad = failures + errors;
  const total = checks + errors;
  const percent = total ? Math.floor((100 * (total - bad)) / total) : 0;
  console.log(`${percent}%: Checks: ${total}, Failures: ${failures}, Errors: ${errors}`);
  return bad === 0 && checks > 0 ? 0 : 1;
}
