// The torch protocol's envelope (docs/protocol.md, section 1), defined once: its version, the request line ttd writes
// and the lines the torch side answers with. Generated with the ops' schemas into contract.json (`protocol`), from
// which the torch side takes its PROTOCOL_VERSION and against which its unittests check the lines it writes.
import { z } from 'zod';

/** The protocol's version: every line of either side carries it as `v`. */
export const PROTOCOL_VERSION = 1;

/** One request: an op and its arguments; `threads` sizes the forked child's pools (ttd_torch/zygote.py). */
export const RequestLine = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  id: z.string(),
  op: z.string(),
  args: z.record(z.string(), z.unknown()),
  threads: z.number().int().positive().optional(),
});
export type RequestLine = z.infer<typeof RequestLine>;

/** One line of a response: a progress event, or the result (`ok`, with the op's own time `ms`), or an error. */
export const ResponseLine = z.object({
  v: z.literal(PROTOCOL_VERSION),
  id: z.string(),
  event: z.string().optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  ok: z.boolean().optional(),
  ms: z.number().optional(),
  result: z.record(z.string(), z.unknown()).optional(),
  error: z.object({ code: z.string(), message: z.string(), traceback: z.string().optional() }).optional(),
});
export type ResponseLine = z.infer<typeof ResponseLine>;

/** The envelope as JSON Schema, for contract.json. */
export function protocolJsonSchema(): { version: number; request: unknown; response: unknown } {
  return {
    version: PROTOCOL_VERSION,
    request: z.toJSONSchema(RequestLine, { io: 'input', unrepresentable: 'throw' }),
    response: z.toJSONSchema(ResponseLine, { io: 'output', unrepresentable: 'throw' }),
  };
}
