// What the Chrome extension does with the Tenantry API, run against a live server.
//
//   TENANTRY_BASE_URL=http://127.0.0.1:8080 TENANTRY_TOKEN=… node dist/extension.js
//
// The token needs `people:read` and `people:write`. Every call goes through the types that
// `npm run generate` writes from ../../openapi.json (src/schema.d.ts), so a change of the
// spec that breaks one of these flows fails `tsc` before anything runs.
//
// Steps: page through people with cursors; a small page for the popup (`fields`); create
// a person with an Idempotency-Key and send it again (the replay); PATCH with If-Match,
// then with the stale ETag (412); GET with If-None-Match (304), in full and shaped by
// `fields` (a weak ETag of its own); use up the credential's rate-limit budget with cheap
// reads and wait out the 429 by its Retry-After, by hand and through the retrying fetch.
// Any unexpected answer exits 1; the summary says what was seen.
//
// A read that takes `fields` / `expand` answers either `application/json` (the full
// `Person`) or `application/vnd.tenantry.partial+json` (a `PersonPartial`: only `id` and
// `version` are sure to be there), so its `data` is typed as the union of both.

import { randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";

import createClient from "openapi-fetch";

import type { components, paths } from "./schema.js";

type Person = components["schemas"]["Person"];
type PersonPartial = components["schemas"]["PersonPartial"];
/** The media type of a read shaped by `fields` / `expand`. */
const partialJson = "application/vnd.tenantry.partial+json";
type Problem = components["schemas"]["Problem"];

/** An answer the API's contract does not allow here: the run fails with it. */
class Unexpected extends Error {
  override name = "Unexpected";
}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Unexpected(what);
}

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Unexpected(`${name} is not set`);
  }
  return value;
}

const baseUrl = env("TENANTRY_BASE_URL").replace(/\/+$/, "");
const token = env("TENANTRY_TOKEN");
/** Items per page: small, so that the demo tenant's people take several pages. */
const pageLimit = 2;
/** The longest Retry-After this run is willing to wait, in seconds. */
const maxRetryAfter = 120;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Retry-After in seconds. The spec declares an integer (delay-seconds); an HTTP-date is
 * accepted too, as RFC 9110 allows it.
 */
function retryAfterSeconds(response: Response): number | undefined {
  const raw = response.headers.get("Retry-After");
  if (raw === null) return undefined;
  if (/^\d+$/.test(raw.trim())) return Number(raw.trim());
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** What the retrying fetch did, for the summary. */
const retries = { waits: 0, waitedMs: 0 };

/**
 * The extension's fetch: a 429 (or a 503 shed) is waited out by its Retry-After and the
 * request sent again, at most three times. The request is cloned before each attempt so a
 * body can be sent again.
 */
async function retryingFetch(request: Request): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(request.clone());
    if ((response.status !== 429 && response.status !== 503) || attempt === 3) return response;
    const seconds = retryAfterSeconds(response);
    if (seconds === undefined || seconds > maxRetryAfter) return response;
    await response.body?.cancel();
    const ms = seconds * 1000 + 50;
    retries.waits += 1;
    retries.waitedMs += ms;
    await sleep(ms);
  }
}

const headers = { Authorization: `Bearer ${token}` };
/** The extension's client. */
const api = createClient<paths>({ baseUrl, headers, fetch: retryingFetch });
/** The same without retries, to see a 429 as it comes. */
const raw = createClient<paths>({ baseUrl, headers });

/**
 * Checks an error response: problem+json, the status, the type, a request id. `type` is
 * the last segment of the problem type URI: Tenantry's own end in `/<type>`
 * (`https://tenantry.dev/problems/precondition-failed`), IANA's registered ones in
 * `#<type>` (`https://iana.org/assignments/http-problem-types#quota-exceeded`).
 */
function checkProblem(
  response: Response,
  error: Problem | undefined,
  status: number,
  type: string,
): Problem {
  check(response.status === status, `expected ${status}, got ${response.status}`);
  const contentType = response.headers.get("Content-Type") ?? "";
  check(
    contentType.startsWith("application/problem+json"),
    `a ${status} should be application/problem+json, was ${JSON.stringify(contentType)}`,
  );
  check(error !== undefined, `a ${status} without a problem body`);
  check(error.status === status, `problem.status ${error.status} on a ${status}`);
  check(
    error.type.endsWith(`/${type}`) || error.type.endsWith(`#${type}`),
    `problem.type ${error.type}, expected …/${type} or …#${type}`,
  );
  check(typeof error.request_id === "string" && error.request_id !== "", "problem without request_id");
  return error;
}

function etagOf(response: Response): string {
  const etag = response.headers.get("ETag");
  check(etag !== null && /^"\d+"$/.test(etag), `ETag ${JSON.stringify(etag)}, expected "<version>"`);
  return etag;
}

/** Lists every person, `pageLimit` at a time, following `next_cursor` until `has_more` is false. */
async function listAllPeople(): Promise<{ pages: number; people: Array<Person | PersonPartial> }> {
  const people: Array<Person | PersonPartial> = [];
  let cursor: string | undefined;
  let pages = 0;
  for (;;) {
    const query = cursor === undefined ? { limit: pageLimit } : { limit: pageLimit, cursor };
    const { data, error, response } = await api.GET("/v1/people", { params: { query } });
    if (data === undefined) {
      throw new Unexpected(`list_people: ${response.status} ${error?.type ?? ""} ${error?.detail ?? ""}`);
    }
    pages += 1;
    check(data.data.length <= pageLimit, `a page of ${data.data.length} people with limit=${pageLimit}`);
    people.push(...data.data);
    const link = response.headers.get("Link");
    if (!data.has_more) {
      check(link === null, `the last page has a Link header: ${link}`);
      break;
    }
    const next = data.next_cursor;
    check(typeof next === "string" && next !== "", "has_more without a next_cursor");
    check(
      link !== null && link.includes('rel="next"') && link.includes(encodeURIComponent(next)),
      `Link header ${JSON.stringify(link)} does not carry next_cursor`,
    );
    check(pages < 1000, "more than 1000 pages: the cursor does not advance");
    cursor = next;
  }
  const ids = new Set(people.map((p) => p.id));
  check(ids.size === people.length, "a person came twice while paging");
  check(pages >= 2, `only ${pages} page(s) of ${pageLimit}: paging was not exercised`);
  return { pages, people };
}

/** The credential's quota from `RateLimit-Policy` (`"credential";q=300;w=60`). */
function credentialQuota(response: Response): number {
  const policy = response.headers.get("RateLimit-Policy");
  check(policy !== null, "no RateLimit-Policy header: are rate limits disabled?");
  const match = /"credential";q=(\d+)/.exec(policy);
  check(match?.[1] !== undefined, `no credential policy in ${JSON.stringify(policy)}`);
  return Number(match[1]);
}

/** Reads one person (cost 1) until a 429; returns it and how many reads it took. */
async function burnUntil429(id: string, bound: number): Promise<{ reads: number; response: Response; error: Problem | undefined }> {
  for (let reads = 1; reads <= bound; reads++) {
    const { error, response } = await raw.GET("/v1/people/{id}", { params: { path: { id } } });
    if (response.status === 429) return { reads, response, error };
    check(response.status === 200, `get_person while burning: ${response.status}`);
  }
  throw new Unexpected(`no 429 after ${bound} reads`);
}

const summary: string[] = [];
async function step(name: string, run: () => Promise<string>): Promise<void> {
  const started = performance.now();
  const what = await run();
  const ms = Math.round(performance.now() - started);
  summary.push(`${`${ms}`.padStart(6)} ms  ${name}: ${what}`);
}

async function main(): Promise<void> {
  await step("list people with cursors", async () => {
    const { pages, people } = await listAllPeople();
    return `${people.length} people in ${pages} pages of ${pageLimit}`;
  });

  await step("a small page for the popup (fields)", async () => {
    const fields = "first_name,last_name,email";
    const full = await api.GET("/v1/people", { params: { query: { limit: 50 } } });
    const small = await api.GET("/v1/people", { params: { query: { limit: 50, fields } } });
    if (full.data === undefined || small.data === undefined) {
      throw new Unexpected(`list_people: ${full.response.status}, with fields ${small.response.status}`);
    }
    const contentType = small.response.headers.get("Content-Type");
    check(contentType === partialJson, `a page with fields came as ${contentType}`);
    // Whichever representation came, each item is a `PersonPartial` at least.
    const items: PersonPartial[] = small.data.data;
    check(items.length === full.data.data.length, "fields changed which people are listed");
    for (const p of items) {
      const keys = Object.keys(p).sort().join(",");
      check(keys === "email,first_name,id,last_name,version", `a shaped person with ${keys}`);
    }
    const bytes = (body: unknown) => JSON.stringify(body).length;
    return `${items.length} people: ${bytes(full.data)} → ${bytes(small.data)} bytes of JSON`;
  });

  let person: Person | undefined;
  let etag = "";
  await step("create with Idempotency-Key, then the replay", async () => {
    const key = `extension-${randomUUID()}`;
    const body = {
      first_name: "Ada",
      last_name: "Extension",
      email: `ada-${randomUUID()}@example.com`,
      stage: "lead",
    } satisfies components["schemas"]["PersonCreate"];
    const params = { header: { "Idempotency-Key": key } };
    const first = await api.POST("/v1/people", { params, body });
    if (first.data === undefined) {
      throw new Unexpected(`create_person: ${first.response.status} ${first.error?.type ?? ""}`);
    }
    check(first.response.status === 201, `create_person: ${first.response.status}`);
    check(first.response.headers.get("Idempotent-Replayed") !== "true", "the first create is marked as a replay");
    check(first.response.headers.get("Location") !== null, "201 without Location");
    etag = etagOf(first.response);
    check(etag === `"${first.data.version}"`, `ETag ${etag} for version ${first.data.version}`);

    const again = await api.POST("/v1/people", { params, body });
    if (again.data === undefined) {
      throw new Unexpected(`create_person replay: ${again.response.status} ${again.error?.type ?? ""}`);
    }
    check(again.response.status === 201, `replay: ${again.response.status}`);
    check(
      again.response.headers.get("Idempotent-Replayed") === "true",
      `replay without Idempotent-Replayed: true (got ${again.response.headers.get("Idempotent-Replayed")})`,
    );
    check(again.data.id === first.data.id, `the replay made another person: ${again.data.id} ≠ ${first.data.id}`);
    check(isDeepStrictEqual(again.data, first.data), "the replay's body differs from the first response");
    check(etagOf(again.response) === etag, "the replay's ETag differs");
    person = first.data;
    return `${first.data.id}, replayed with the same id`;
  });
  check(person !== undefined, "no person created");
  const id = person.id;

  let staleEtag = "";
  await step("PATCH with If-Match", async () => {
    const { data, error, response } = await api.PATCH("/v1/people/{id}", {
      params: { path: { id }, header: { "If-Match": etag } },
      body: { stage: "contacted", title: "Analyst" },
    });
    if (data === undefined) {
      throw new Unexpected(`update_person: ${response.status} ${error?.type ?? ""}`);
    }
    check(data.version === person!.version + 1, `version ${data.version} after one change of ${person!.version}`);
    check(data.stage === "contacted" && data.title === "Analyst", "the change was not applied");
    staleEtag = etag;
    etag = etagOf(response);
    check(etag === `"${data.version}"`, `ETag ${etag} for version ${data.version}`);
    return `${staleEtag} → ${etag}`;
  });

  await step("PATCH with the stale ETag", async () => {
    const { data, error, response } = await api.PATCH("/v1/people/{id}", {
      params: { path: { id }, header: { "If-Match": staleEtag } },
      body: { stage: "qualified" },
    });
    check(data === undefined, "a PATCH with a stale ETag succeeded");
    const problem = checkProblem(response, error, 412, "precondition-failed");
    return `412 ${problem.title} (request ${problem.request_id ?? "?"})`;
  });

  await step("GET with If-None-Match", async () => {
    const unchanged = await api.GET("/v1/people/{id}", {
      params: { path: { id }, header: { "If-None-Match": etag } },
    });
    check(unchanged.response.status === 304, `If-None-Match with the current ETag: ${unchanged.response.status}`);
    check(unchanged.data === undefined, "a 304 with a body");
    check(unchanged.response.headers.get("ETag") === etag, "a 304 without the current ETag");
    check(unchanged.response.headers.get("X-RateLimit-Cost") === "0", "a 304 was charged");

    const changed = await api.GET("/v1/people/{id}", {
      params: { path: { id }, header: { "If-None-Match": staleEtag } },
    });
    if (changed.data === undefined) {
      throw new Unexpected(`If-None-Match with a stale ETag: ${changed.response.status}`);
    }
    check(changed.data.stage === "contacted", "the read does not show the change");
    check(etagOf(changed.response) === etag, "GET's ETag differs from PATCH's");
    return `304 for ${etag} (cost 0), 200 for ${staleEtag}`;
  });

  await step("GET shaped by fields, with If-None-Match", async () => {
    const query = { fields: "first_name,stage" };
    const first = await api.GET("/v1/people/{id}", { params: { path: { id }, query } });
    if (first.data === undefined) {
      throw new Unexpected(`get_person with fields: ${first.response.status}`);
    }
    check(first.response.headers.get("Content-Type") === partialJson, "a shaped read is partial JSON");
    check(first.data.stage === "contacted" && first.data.last_name === undefined, "not the fields asked for");
    const weak = first.response.headers.get("ETag") ?? "";
    check(weak.startsWith('W/"') && weak !== etag, `a shaped read's ETag ${weak} (full: ${etag})`);
    const unchanged = await api.GET("/v1/people/{id}", {
      params: { path: { id }, query, header: { "If-None-Match": weak } },
    });
    check(unchanged.response.status === 304, `If-None-Match with the shaped ETag: ${unchanged.response.status}`);
    check(unchanged.response.headers.get("X-RateLimit-Cost") === "0", "a 304 was charged");
    const full = await api.GET("/v1/people/{id}", {
      params: { path: { id }, header: { "If-None-Match": weak } },
    });
    check(full.response.status === 200, `the shaped ETag answered for the full person: ${full.response.status}`);
    return `${weak}: 304 for the same fields, 200 in full`;
  });

  await step("wait out a 429 by its Retry-After", async () => {
    const probe = await raw.GET("/v1/people/{id}", { params: { path: { id } } });
    check(probe.response.status === 200, `get_person: ${probe.response.status}`);
    const quota = credentialQuota(probe.response);
    const { reads, response, error } = await burnUntil429(id, quota + 50);
    const problem = checkProblem(response, error, 429, "quota-exceeded");
    check(
      problem["violated-policies"].includes("credential"),
      `violated-policies ${JSON.stringify(problem["violated-policies"])}, expected the credential's`,
    );
    check(response.headers.get("X-RateLimit-Cost") === "0", "a refused request was charged");
    const seconds = retryAfterSeconds(response);
    check(seconds !== undefined, "a 429 without Retry-After");
    check(seconds >= 1 && seconds <= maxRetryAfter, `Retry-After ${seconds}s`);
    await sleep(seconds * 1000);
    const after = await raw.GET("/v1/people/{id}", { params: { path: { id } } });
    check(after.response.status === 200, `the same read after Retry-After ${seconds}s: ${after.response.status}`);

    // The extension's own client: it waits a 429 out by itself.
    await burnUntil429(id, quota + 50);
    const waitsBefore = retries.waits;
    const retried = await api.GET("/v1/people/{id}", { params: { path: { id } } });
    check(retried.data !== undefined, `the retrying client gave up: ${retried.response.status}`);
    check(retries.waits > waitsBefore, "the retrying client met no 429 to wait out");
    return `credential quota ${quota}: 429 after ${reads} reads, Retry-After ${seconds}s waited, then 200; the retrying client waited ${retries.waits - waitsBefore} time(s)`;
  });
}

const started = performance.now();
try {
  await main();
  console.log(`extension flows against ${baseUrl}: all passed`);
  for (const line of summary) console.log(line);
  console.log(`${`${Math.round(performance.now() - started)}`.padStart(6)} ms  total (${retries.waits} retry wait(s) in the client, ${retries.waitedMs} ms)`);
} catch (e: unknown) {
  for (const line of summary) console.log(line);
  const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  console.error(`FAILED after ${summary.length} step(s): ${message}`);
  process.exitCode = 1;
}
