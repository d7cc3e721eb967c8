/// Where compiled kernels are kept on disk.
///
/// `FLEXATTENTION_CACHE_DIR` when set; else `$XDG_CACHE_HOME/flexattention`; else `~/.cache/flexattention`. Cubins
/// live in its `kernels/` folder, one file per key.
package enum KernelCacheLocation {
    /// The cache folder for the current environment.
    package static var current: String {
        cacheRoot(environment: ProcessEnvironment.current)
    }

    static func cacheRoot(environment: [String: String]) -> String {
        if let explicit = environment["FLEXATTENTION_CACHE_DIR"], !explicit.isEmpty { return explicit }
        return userCacheRoot(environment: environment)
    }

    /// The per-user folder, ignoring `FLEXATTENTION_CACHE_DIR` (where `scripts/install-nvrtc.sh` installs).
    static func userCacheRoot(environment: [String: String]) -> String {
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return "\(xdg)/flexattention" }
        return "\(environment["HOME"] ?? "/tmp")/.cache/flexattention"
    }
}
