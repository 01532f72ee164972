// The s3rver package ships no executable: this starts its command line.
// Run under `node --openssl-legacy-provider` (its listing continuation tokens need it).
require('@20minutes/s3rver/lib/cli').parseAsync(process.argv).catch((e) => { console.error(e); process.exit(1); });
