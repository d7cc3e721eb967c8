/// `flexattn bench --decode` on the CPU. A placeholder on this branch: the CPU decode and its benchmark are written
/// on main, which replaces this file.
struct CPUDecodeBenchmark {
    let json: Bool

    func execute() throws {
        throw CommandLineError("bench --decode times the GPU in this build; give --device cuda")
    }
}
