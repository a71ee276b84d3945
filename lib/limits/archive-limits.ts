// Expansion limits of zip archives (TorchScript archives are zips): a foreign archive is checked before it is uploaded.
// Only the central directory is read, never inflated. The torch side checks the same limits before every load
// (runtimes/python/ttd_torch/archive_limits.py); docs/trust-limits.md says what they promise.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ErrorCode, TtdError } from '../contract/errors';

const MIB = 1024 * 1024;

/** The most an archive may hold; the torch side reads the same environment variables. */
export interface ArchiveLimits {
  /** Declared expanded bytes of all entries (TTD_MAX_ARCHIVE_MB, default 4096 MiB). */
  maxBytes: number;
  /** Entries (TTD_MAX_ARCHIVE_ENTRIES, default 65536). */
  maxEntries: number;
  /** Expanded bytes per byte of archive (TTD_MAX_ARCHIVE_RATIO, default 100), checked above RATIO_FLOOR_BYTES. */
  maxRatio: number;
}

/** The defaults, far above what torch writes: its archives are stored uncompressed (ratio about 1). */
export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = { maxBytes: 4096 * MIB, maxEntries: 65_536, maxRatio: 100 };

/** Below this many expanded bytes the ratio is not checked: a few KB of code compress well and cost nothing. */
export const RATIO_FLOOR_BYTES = 1 * MIB;

/** What an archive's central directory declares. */
export interface ArchiveFootprint {
  fileBytes: number;
  entries: number;
  expandedBytes: number;
}

/** The environment variables that carry the limits to torch processes. */
export function archiveLimitsEnv(limits: ArchiveLimits): Record<string, string> {
  return {
    TTD_MAX_ARCHIVE_MB: String(limits.maxBytes / MIB),
    TTD_MAX_ARCHIVE_ENTRIES: String(limits.maxEntries),
    TTD_MAX_ARCHIVE_RATIO: String(limits.maxRatio),
  };
}

/** Throws TtdError(archive_too_large) naming the archive, its size and the limit when the zip at `path` is past one. */
export function checkArchiveLimits(field: string, value: string, path: string, limits: ArchiveLimits): ArchiveFootprint {
  const fp = archiveFootprint(path, field, value);
  const refuse = (what: string, limit: string) => {
    throw new TtdError(ErrorCode.archiveTooLarge, `${field}: '${value}' ${what}; the limit is ${limit}`, { path, ...fp, limits });
  };
  if (fp.entries > limits.maxEntries) refuse(`has ${fp.entries} entries`, `${limits.maxEntries} (TTD_MAX_ARCHIVE_ENTRIES)`);
  if (fp.expandedBytes > limits.maxBytes) {
    refuse(
      `(${fp.fileBytes} bytes) expands to ${fp.expandedBytes} bytes`,
      `${limits.maxBytes} bytes (${limits.maxBytes / MIB} MiB, TTD_MAX_ARCHIVE_MB)`,
    );
  }
  if (fp.expandedBytes > RATIO_FLOOR_BYTES && fp.expandedBytes > limits.maxRatio * Math.max(fp.fileBytes, 1)) {
    const ratio = Math.round(fp.expandedBytes / Math.max(fp.fileBytes, 1));
    refuse(
      `(${fp.fileBytes} bytes) expands to ${fp.expandedBytes} bytes, ${ratio} times its size`,
      `${limits.maxRatio} times (TTD_MAX_ARCHIVE_RATIO)`,
    );
  }
  return fp;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL_HEADER = 0x02014b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

/** Entries and declared expanded bytes from the central directory (zip64 too); an unreadable one is artifact_invalid. */
export function archiveFootprint(path: string, field = 'archive', value = path): ArchiveFootprint {
  const fd = openSync(path, 'r');
  try {
    const fileBytes = fstatSync(fd).size;
    const bad = (why: string): never => {
      throw new TtdError(ErrorCode.artifactInvalid, `${field}: '${value}' is not a readable zip archive (${why})`, { path });
    };
    const read = (position: number, length: number): Buffer => {
      if (position < 0 || length < 0 || position + length > fileBytes) bad('a record points outside the file');
      const buf = Buffer.alloc(length);
      if (readSync(fd, buf, 0, length, position) !== length) bad('short read');
      return buf;
    };
    const tailLength = Math.min(fileBytes, EOCD_SIZE + MAX_COMMENT);
    const tail = read(fileBytes - tailLength, tailLength);
    let at = -1;
    for (let i = tailLength - EOCD_SIZE; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD) {
        at = i;
        break;
      }
    }
    if (at < 0) bad('no end of central directory record');
    let entries: number = tail.readUInt16LE(at + 10);
    let cdSize: number = tail.readUInt32LE(at + 12);
    let cdOffset: number = tail.readUInt32LE(at + 16);
    if (entries === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const eocdPos = fileBytes - tailLength + at;
      const locator = read(eocdPos - 20, 20);
      if (locator.readUInt32LE(0) !== ZIP64_LOCATOR) bad('zip64 fields without a zip64 locator');
      const record = read(Number(locator.readBigUInt64LE(8)), 56);
      if (record.readUInt32LE(0) !== ZIP64_EOCD) bad('no zip64 end of central directory record');
      entries = Number(record.readBigUInt64LE(32));
      cdSize = Number(record.readBigUInt64LE(40));
      cdOffset = Number(record.readBigUInt64LE(48));
    }
    // Each central header is at least 46 bytes: a count the file cannot hold is a lie, refused before any loop.
    if (entries * 46 > cdSize) bad(`${entries} entries cannot fit in a central directory of ${cdSize} bytes`);
    const cd = read(cdOffset, cdSize);
    let expandedBytes = 0;
    let pos = 0;
    for (let n = 0; n < entries; n++) {
      if (pos + 46 > cd.length || cd.readUInt32LE(pos) !== CENTRAL_HEADER) bad(`central directory entry ${n} is malformed`);
      let compressed: number = cd.readUInt32LE(pos + 20);
      let expanded: number = cd.readUInt32LE(pos + 24);
      const nameLength = cd.readUInt16LE(pos + 28);
      const extraLength = cd.readUInt16LE(pos + 30);
      const commentLength = cd.readUInt16LE(pos + 32);
      const extraStart = pos + 46 + nameLength;
      if (extraStart + extraLength + commentLength > cd.length) bad(`central directory entry ${n} runs past its end`);
      if (expanded === 0xffffffff || compressed === 0xffffffff) {
        // The zip64 extra field holds the 8-byte sizes that are 0xffffffff above, uncompressed first.
        for (let e = extraStart; e + 4 <= extraStart + extraLength;) {
          const id = cd.readUInt16LE(e);
          const size = cd.readUInt16LE(e + 2);
          if (id === 0x0001) {
            let f = e + 4;
            if (expanded === 0xffffffff && f + 8 <= e + 4 + size) {
              expanded = Number(cd.readBigUInt64LE(f));
              f += 8;
            }
            if (compressed === 0xffffffff && f + 8 <= e + 4 + size) compressed = Number(cd.readBigUInt64LE(f));
            break;
          }
          e += 4 + size;
        }
      }
      expandedBytes += expanded;
      pos = extraStart + extraLength + commentLength;
    }
    return { fileBytes, entries, expandedBytes };
  } finally {
    closeSync(fd);
  }
}
