import Glibc

/// Raises this process's soft limit on open files to its hard limit, as
/// servers do at start: a peer keeps the descriptor of each shared file it
/// hashed (to serve exactly that file, never what a path points to later),
/// and a tracker one per connection, so the usual soft limit of 1024 would
/// cap a folder at a few hundred files. Nothing happens where the soft
/// limit is already the hard one.
enum FileDescriptorLimit {
    static func raise() {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    }
}
