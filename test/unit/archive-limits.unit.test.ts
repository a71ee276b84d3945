// The central-directory reader of lib/limits/archive-limits.ts on zips written by Python's zipfile (plain and zip64), and on
// files that are not zips or lie about their entries. No torch: the integration tests load real archives.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { archiveFootprint, checkArchiveLimits, DEFAULT_ARCHIVE_LIMITS } from '../../lib/limits/archive-limits';
import { tempDir } from '../helpers';

/** Writes a zip with Python's zipfile: `entries` deflated entries of `bytes` zeros each. */
function pythonZip(path: string, entries: number, bytes: number): void {
  const script = `
import sys, zipfile
path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    for i in range(n):
        info = zipfile.ZipInfo(f"archive/data/{i}")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w") as w:
            w.write(bytes(size))
`;
  execFileSync('/usr/bin/python3', ['-I', '-c', script, path, String(entries), String(bytes)]);
}

/** A zip64 archive by hand: one stored entry of 5 bytes whose central directory declares `declared` bytes in the zip64
 * extra field (sizes 0xffffffff in the header), with a zip64 end record and locator: what a bomb past 4 GiB looks like. */
function zip64Archive(declared: bigint): Buffer {
  const name = Buffer.from('archive/data/0');
  const data = Buffer.from('hello');
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(45, 4);
  local.writeUInt32LE(5, 18);
  local.writeUInt32LE(5, 22);
  local.writeUInt16LE(name.length, 26);
  const extra = Buffer.alloc(20);
  extra.writeUInt16LE(0x0001, 0);
  extra.writeUInt16LE(16, 2);
  extra.writeBigUInt64LE(declared, 4); // uncompressed
  extra.writeBigUInt64LE(5n, 12); // compressed
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(45, 4);
  central.writeUInt16LE(45, 6);
  central.writeUInt32LE(0xffffffff, 20);
  central.writeUInt32LE(0xffffffff, 24);
  central.writeUInt16LE(name.length, 28);
  central.writeUInt16LE(extra.length, 30);
  const cdOffset = local.length + name.length + data.length;
  const cd = Buffer.concat([central, name, extra]);
  const end64 = Buffer.alloc(56);
  end64.writeUInt32LE(0x06064b50, 0);
  end64.writeBigUInt64LE(44n, 4);
  end64.writeUInt16LE(45, 12);
  end64.writeUInt16LE(45, 14);
  end64.writeBigUInt64LE(1n, 24);
  end64.writeBigUInt64LE(1n, 32);
  end64.writeBigUInt64LE(BigInt(cd.length), 40);
  end64.writeBigUInt64LE(BigInt(cdOffset), 48);
  const locator = Buffer.alloc(20);
  locator.writeUInt32LE(0x07064b50, 0);
  locator.writeBigUInt64LE(BigInt(cdOffset + cd.length), 8);
  locator.writeUInt32LE(1, 16);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(0xffff, 8);
  end.writeUInt16LE(0xffff, 10);
  end.writeUInt32LE(0xffffffff, 12);
  end.writeUInt32LE(0xffffffff, 16);
  return Buffer.concat([local, name, data, cd, end64, locator, end]);
}

describe('archive limits', () => {
  it('the footprint of a plain zip is its entry count and declared expanded bytes', () => {
    const path = join(tempDir(), 'plain.zip');
    pythonZip(path, 3, 1000);
    expect(archiveFootprint(path)).toMatchObject({ entries: 3, expandedBytes: 3000 });
  });

  it('the footprint of a zip64 archive reads the sizes from the zip64 extra field, as Python reads them', () => {
    const path = join(tempDir(), 'zip64.zip');
    writeFileSync(path, zip64Archive(5n * 2n ** 30n));
    const python = execFileSync('/usr/bin/python3', [
      '-I',
      '-c',
      'import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))',
      path,
    ]);
    expect(Number(python.toString())).toBe(5 * 2 ** 30);
    const fp = archiveFootprint(path);
    expect(fp).toMatchObject({ entries: 1, expandedBytes: 5 * 2 ** 30 });
    expect(() => checkArchiveLimits('artifact', './zip64.zip', path, DEFAULT_ARCHIVE_LIMITS)).toThrow(
      `artifact: './zip64.zip' (${fp.fileBytes} bytes) expands to 5368709120 bytes; the limit is 4294967296 bytes (4096 MiB, TTD_MAX_ARCHIVE_MB)`,
    );
  });

  it('an archive within every limit passes, and the entry limit is checked first', () => {
    const path = join(tempDir(), 'ok.zip');
    pythonZip(path, 5, 10);
    expect(checkArchiveLimits('artifact', './ok.zip', path, DEFAULT_ARCHIVE_LIMITS).entries).toBe(5);
    expect(() => checkArchiveLimits('artifact', './ok.zip', path, { ...DEFAULT_ARCHIVE_LIMITS, maxEntries: 4 })).toThrow(
      "artifact: './ok.zip' has 5 entries; the limit is 4 (TTD_MAX_ARCHIVE_ENTRIES)",
    );
  });

  it('a file without a central directory, or one claiming more entries than it holds, is artifact_invalid', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'junk.pt'), Buffer.alloc(100, 7));
    expect(() => archiveFootprint(join(dir, 'junk.pt'), 'artifact', './junk.pt')).toThrow(
      "artifact: './junk.pt' is not a readable zip archive (no end of central directory record)",
    );
    const path = join(dir, 'lie.zip');
    pythonZip(path, 1, 10);
    const bytes = execFileSync('cat', [path]);
    const eocd = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    bytes.writeUInt16LE(60000, eocd + 10); // entries: 60000 in a directory of one
    writeFileSync(path, bytes);
    let err: unknown;
    try {
      archiveFootprint(path, 'artifact', './lie.zip');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'artifact_invalid' });
    expect((err as Error).message).toContain('60000 entries cannot fit in a central directory of');
  });
});
