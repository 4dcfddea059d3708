/** Minimal Express 4 request/response types for httpAdmin handlers. */
export interface Request {
  body?: any;
  params: Record<string, string>;
  query: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
}
export interface Response {
  status(code: number): Response;
  json(body: unknown): void;
  send(body?: unknown): void;
  sendStatus(code: number): void;
}
export type NextFunction = (err?: unknown) => void;
export type RequestHandler = (req: Request, res: Response, next: NextFunction) => void;
