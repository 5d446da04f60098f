import { type CliContext, type Program } from '../context.js';

// Placeholder: the registry helpers fill this in (issue 13 §1).
export function registerGet(program: Program, ctx: CliContext): void {
  void program;
  void ctx;
}
