struct RunCommand {
    init(arguments: [String]) throws {}
    func execute() throws {}
}
