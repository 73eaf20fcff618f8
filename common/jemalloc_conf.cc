// jemalloc's settings for orchard-server and orchard-worker, linked into them
// only when they link jemalloc (ORCHARD_JEMALLOC). jemalloc reads this symbol
// at start; the MALLOC_CONF environment variable still overrides it.
//
// narenas:2: jemalloc's default is four arenas per core. The 1,000,000-subtask
// fan-out peaked at 257 MiB of server RSS with the default and 228 MiB with
// two, at the same speed (orchard-bench --only fanout,many, README).
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "narenas:2";
}
