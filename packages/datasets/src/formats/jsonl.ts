import { parseJson, type Place } from '../errors.js';
import { asObject, type JsonObject } from '../task.js';
import { fileSystem } from '@hyperllama/runtime';

/** One parsed JSONL line with its 1-based line number. */
export interface JsonlRecord {
  line: number;
  value: JsonObject;
}

/** Reads a JSON-lines file; blank lines are skipped, any other line must be a JSON object. */
export function readJsonl(file: string): JsonlRecord[] {
  const records: JsonlRecord[] = [];
  fileSystem()
    .readText(file)
    .split('\n')
    .forEach((text, i) => {
      if (text.trim() === '') return;
      const place: Place = { file, line: i + 1 };
      records.push({ line: i + 1, value: asObject(parseJson(text, place), place) });
    });
  return records;
}
