/** Types of datasets.mjs (deterministic CSV and JSON-lines datasets for the bench and the slow-link tests). */
export declare function rng(seed: number): () => number;
export declare const CSV_HEADER: string;
export declare function csvRow(i: number, seed?: number): string;
export declare function jsonLine(i: number, seed?: number): string;
export declare function writeCsv(file: string, bytes: number, seed?: number): { rows: number; bytes: number };
export declare function writeJsonl(file: string, bytes: number, seed?: number): { rows: number; bytes: number };
export declare function appendCsvRows(src: string, dst: string, rows: number, count: number, seed?: number): void;
export declare function insertCsvRows(src: string, dst: string, count: number, seed?: number): void;
