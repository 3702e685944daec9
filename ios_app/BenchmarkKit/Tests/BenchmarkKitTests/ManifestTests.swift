import BenchmarkKit
import XCTest

final class ManifestTests: XCTestCase {
    static let sha = String(repeating: "ab", count: 32)

    static func sampleManifest(layout: String? = "NCHW") -> ArtifactManifest {
        ArtifactManifest(
            model: "mobileone_s0",
            target: "coreml-fp16",
            sha256: sha,
            input: InputDescription(name: "input", shape: [1, 3, 4, 5], dtype: "float32", layout: layout),
            preprocessing: PreprocessingDescription(resize: 256, crop: 224, mean: [0.5, 0.5, 0.5], std: [0.25, 0.5, 1])
        )
    }

    func testDecodesNestedInputObject() throws {
        let json = """
        {"model": "mnv4_conv_s", "target": "coreml-fp16", "sha256": "\(Self.sha)", "status": "OK",
         "input": {"name": "input", "shape": [1, 3, 224, 224], "dtype": "float16", "layout": "NCHW"},
         "preprocessing": {"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406],
                           "std": [0.229, 0.224, 0.225], "color": "RGB"}}
        """
        let manifest = try JSONDecoder().decode(ArtifactManifest.self, from: Data(json.utf8))
        XCTAssertEqual(manifest.input.shape, [1, 3, 224, 224])
        XCTAssertEqual(manifest.format, "coreml")
        XCTAssertEqual(try InputTensorPlan(manifest: manifest).dtype, .float16)
    }

    func testDecodesInputsArrayAndWrappedList() throws {
        let json = """
        {"artifacts": [{"model": "m", "target": "tflite-w8a8", "sha256": "\(Self.sha)",
                        "inputs": [{"name": "args_0", "shape": [1, 224, 224, 3], "dtype": "int8"}]}]}
        """
        let list = try ArtifactList.decode(Data(json.utf8))
        XCTAssertEqual(list.count, 1)
        XCTAssertEqual(try InputTensorPlan(manifest: list[0]).layout, .nhwc)
    }

    func testDynamicDimensionSkipsOnlyThatEntry() throws {
        let json = """
        [{"model": "a", "target": "onnx-fp32", "sha256": "\(Self.sha)",
          "input": {"name": "input", "shape": ["batch", 3, 224, 224], "dtype": "float32"}},
         {"model": "b", "target": "onnx-fp32", "sha256": "\(Self.sha)",
          "input": {"name": "input", "shape": [null, 3, 224, 224], "dtype": "float32"}},
         {"model": "c", "target": "tflite-fp32", "sha256": "\(Self.sha)",
          "input": {"name": "input", "shape": [1, 3, 192, 256], "dtype": "float32"},
          "preprocessing": {"resize": 256, "crop": [192, 256], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}]
        """
        let list = try ArtifactList.decode(Data(json.utf8))
        XCTAssertEqual(list.map(\.model), ["c"])
        XCTAssertEqual(list[0].preprocessing?.crop, [192, 256])
    }

    func testRejectsBadShapeAndChecksum() {
        let badShape = """
        {"model": "m", "target": "coreml-fp16", "sha256": "\(Self.sha)",
         "input": {"name": "x", "shape": [-1, 3, 224, 224], "dtype": "float32"}}
        """
        let badSha = """
        {"model": "m", "target": "coreml-fp16", "sha256": "abc",
         "input": {"name": "x", "shape": [1, 3, 224, 224], "dtype": "float32"}}
        """
        XCTAssertThrowsError(try JSONDecoder().decode(ArtifactManifest.self, from: Data(badShape.utf8)))
        XCTAssertThrowsError(try JSONDecoder().decode(ArtifactManifest.self, from: Data(badSha.utf8)))
    }

    func testNormalizedValuesUseManifestMeanStdAndLayout() throws {
        let nchw = try InputTensorPlan(manifest: Self.sampleManifest(layout: "NCHW"))
        let nhwc = try InputTensorPlan(manifest: ArtifactManifest(
            model: "m", target: "tflite-fp32", sha256: Self.sha,
            input: InputDescription(name: "x", shape: [1, 4, 5, 3], dtype: "float32", layout: "NHWC"),
            preprocessing: Self.sampleManifest().preprocessing
        ))
        let pre = Self.sampleManifest().preprocessing
        let a = try nchw.normalizedValues(preprocessing: pre)
        let b = try nhwc.normalizedValues(preprocessing: pre)
        XCTAssertEqual(a.count, 60)
        XCTAssertEqual(b.count, 60)
        // pixel (c=1, y=2, x=3) = (3*7 + 2*13 + 29) % 256 = 76; (76/255 - 0.5) / 0.5
        let expected = Float((76.0 / 255 - 0.5) / 0.5)
        XCTAssertEqual(a[nchw.offset(n: 0, c: 1, y: 2, x: 3)], expected, accuracy: 1e-6)
        XCTAssertEqual(b[nhwc.offset(n: 0, c: 1, y: 2, x: 3)], expected, accuracy: 1e-6)
    }

    func testServerURLParsing() throws {
        let config = try ServerConfig.parse(url: " 192.168.1.20:8765/ ", token: "  ")
        XCTAssertEqual(config.baseURL.absoluteString, "http://192.168.1.20:8765")
        XCTAssertNil(config.token)
        XCTAssertThrowsError(try ServerConfig.parse(url: "ftp://host", token: nil))
        let client = APIClient(config: try ServerConfig.parse(url: "http://h:1", token: "s3cret"))
        let req = client.request(path: ["api", "v1", "artifacts", "mobileone_s0", "coreml-fp16", "download"])
        XCTAssertEqual(req.url?.absoluteString, "http://h:1/api/v1/artifacts/mobileone_s0/coreml-fp16/download")
        XCTAssertEqual(req.value(forHTTPHeaderField: "Authorization"), "Bearer s3cret")
    }

    func testCoreMLImageInputIsAccepted() throws {
        let json = """
        {"model": "m", "target": "coreml-fp16", "sha256": "\(Self.sha)",
         "input": {"name": "input", "shape": [1, 3, 224, 224], "dtype": "uint8", "layout": "image", "color": "RGB"}}
        """
        let plan = try InputTensorPlan(manifest: try JSONDecoder().decode(ArtifactManifest.self, from: Data(json.utf8)))
        XCTAssertEqual(plan.layout, .image)
        XCTAssertEqual(plan.dimensions.h, 224)
        XCTAssertEqual(InputTensorPlan.syntheticPixel(n: 0, c: 1, y: 2, x: 3), 76)
    }

    func testChipTable() {
        XCTAssertEqual(AppleChips.chip(forModelIdentifier: "iPhone15,2"), "Apple A16 Bionic")
        XCTAssertEqual(AppleChips.chip(forModelIdentifier: "iPhone99,9"), "unknown (iPhone99,9)")
    }
}
