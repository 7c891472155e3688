import { readFileSync } from 'node:fs';
import { parseJson, type Place } from '../errors.js';
import { asObject, type JsonObject } from '../task.js';

/** One parsed JSONL line with its 1-based line number. */
export interface JsonlRecord {
  line: number;
  value: JsonObject;
}

/** Reads a JSON-lines file; blank lines are skipped, any other line must be a JSON object. */
export function readJsonl(file: string): JsonlRecord[] {
  const records: JsonlRecord[] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((text, i) => {
      if (text.trim() === '') return;
      const place: Place = { file, line: i + 1 };
      records.push({ line: i + 1, value: asObject(parseJson(text, place), place) });
    });
  return records;
}
