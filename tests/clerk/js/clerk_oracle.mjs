// Clerk's own code as an oracle: @clerk/backend's verifyToken and authenticateRequest, run on a job
// the Python tests write to stdin (JSON), answering on stdout (JSON). Nothing here decides anything.
import { createClerkClient, verifyToken } from '@clerk/backend';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const job = JSON.parse(Buffer.concat(chunks).toString('utf8'));

// Clerk logs its decisions (loops, handshake failures) to the console; keep stdout for the answer.
console.log = console.warn = console.error = (...args) => process.stderr.write(args.join(' ') + '\n');

async function verifyOne(token) {
  // The public verifyToken returns the claims, and throws a TokenVerificationError when refused.
  try {
    const claims = await verifyToken(token, job.options);
    return { ok: true, sub: claims.sub };
  } catch (error) {
    return { ok: false, reason: error.reason ?? String(error) };
  }
}

async function authenticateOne(shape) {
  const clerk = createClerkClient(job.client);
  try {
    const state = await clerk.authenticateRequest(new Request(shape.url, { method: shape.method, headers: shape.headers }), job.options);
    const auth = state.status === 'handshake' ? null : state.toAuth();
    return {
      status: state.status,
      reason: state.reason,
      userId: auth?.userId ?? null,
      location: state.headers.get('location'),
      setCookies: state.headers.getSetCookie(),
      cacheControl: state.headers.get('cache-control'),
    };
  } catch (error) {
    return { status: 'threw', reason: String(error) };
  }
}

const results = [];
for (const item of job.items) {
  results.push(job.mode === 'verify' ? await verifyOne(item) : await authenticateOne(item));
}
process.stdout.write(JSON.stringify(results));
