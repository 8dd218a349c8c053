import Interpret
import Testing
import TestSupport

@Suite(.timed) struct MethodRegistryTests {
    /// The table is the only list of methods: names unique, each entry builds the method that
    /// reports that name, the layer readers are the CAM family and the layer methods, and a bad
    /// setting is refused.
    @Test func everyEntryBuildsTheMethodItNames() throws {
        let names = MethodRegistry.names
        #expect(Set(names).count == names.count)
        for entry in MethodRegistry.entries {
            let method = try entry.make(MethodRegistry.Settings(layer: "features.18"))
            #expect(method.name == entry.name)
            #expect(entry.readsLayer == (entry.parameters(MethodRegistry.Settings(layer: "L"))["layer"] as? String == "L"))
        }
        #expect(Set(MethodRegistry.entries.filter(\.readsLayer).map(\.name)) == ["gradcam", "gradcam++", "guided_gradcam", "layercam", "hirescam", "xgradcam", "eigencam", "scorecam", "ablationcam",
                                                                               "layer_gradient_x_activation", "layer_conductance", "layer_integrated_gradients", "concept_relevance"])
        #expect(Set(MethodRegistry.entries.filter { $0.cost == .slow }.map(\.name)) == ["scorecam", "ablationcam", "occlusion"])
        var bad = MethodRegistry.Settings(layer: "features.18")
        bad.baseline = "grey"
        #expect(throws: InterpretError.self) { try MethodRegistry.entry("integrated_gradients")!.make(bad) }
        #expect(MethodRegistry.entry("magic") == nil)
    }
}
