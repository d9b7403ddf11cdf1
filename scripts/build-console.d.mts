/** Types of build-console.mjs, for the tests that import its budget. */
export declare const CONSOLE_BUDGET_BYTES: number;
export declare function buildConsole(out: string, opts?: { entry?: string }): Promise<{ js: string; css: string; raw: number; brotli: number }>;
