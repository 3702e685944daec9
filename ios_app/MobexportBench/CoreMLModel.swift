import BenchmarkKit
import CoreML
import CoreVideo
import Foundation

extension ComputeUnitChoice {
    var mlComputeUnits: MLComputeUnits {
        switch self {
        case .all:
            return .all
        case .cpuAndNeuralEngine:
            return .cpuAndNeuralEngine
        case .cpuOnly:
            return .cpuOnly
        case .cpuAndGPU:
            return .cpuAndGPU
        }
    }
}

enum PredictorError: LocalizedError {
    case unsupportedDType(String)
    case inputMismatch(String)
    case noOutput

    var errorDescription: String? {
        switch self {
        case .unsupportedDType(let dtype):
            return "Core ML inputs of dtype \(dtype) are not supported by this app (float32 / float16 only)."
        case .inputMismatch(let why):
            return "The manifest does not match the model: \(why)"
        case .noOutput:
            return "The model produced no multi-array output."
        }
    }
}

/// The Core ML side of the protocol. Creating it is the load (`load_ms`): MLModel(contentsOf:) on the compiled
/// model with the chosen compute units, and the input (MLMultiArray or pixel buffer) allocated and filled once
/// from the manifest. `writeInput` hands that input over for the next call (Core ML reads it from the feature
/// provider inside the prediction; there is no separate copy to make), `invoke` is `prediction(from:)` and
/// `readOutput` reads the output multi-array: the timer spans the prediction alone.
final class CoreMLModel: LoadedModel {
    private let model: MLModel
    private let provider: MLFeatureProvider
    private let outputName: String
    private var pending: MLFeatureProvider?
    private var lastPrediction: MLFeatureProvider?
    private var lastOutput: MLMultiArray?
    private(set) var lastOutputValue: Float = 0

    init(compiledModelURL: URL, computeUnits: MLComputeUnits, plan: InputTensorPlan, values: [Float]) throws {
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits
        model = try MLModel(contentsOf: compiledModelURL, configuration: configuration)
        let description = model.modelDescription
        let inputName = try Self.inputName(plan.name, in: description)
        guard let output = description.outputDescriptionsByName.keys.sorted().first else {
            throw PredictorError.noOutput
        }
        outputName = output
        let value: MLFeatureValue
        if plan.layout == .image {
            value = MLFeatureValue(pixelBuffer: try Self.makePixelBuffer(plan: plan))
        } else {
            let dataType = try Self.dataType(plan.dtype)
            let declared = description.inputDescriptionsByName[inputName]?.multiArrayConstraint?.dataType
            if let declared, declared != dataType {
                throw PredictorError.inputMismatch("input dtype \(plan.dtype.rawValue) vs the model's \(declared.rawValue)")
            }
            value = MLFeatureValue(multiArray: try Self.makeInput(plan: plan, dataType: dataType, values: values))
        }
        provider = try MLDictionaryFeatureProvider(dictionary: [inputName: value])
    }

    /// The manifest's input name; a model with a single input under another name is accepted too.
    private static func inputName(_ wanted: String, in description: MLModelDescription) throws -> String {
        let names = description.inputDescriptionsByName.keys.sorted()
        if names.contains(wanted) {
            return wanted
        }
        guard names.count == 1, let only = names.first else {
            throw PredictorError.inputMismatch("no input named '\(wanted)' (the model has: \(names.joined(separator: ", ")))")
        }
        return only
    }

    func writeInput() throws {
        pending = provider
    }

    func invoke() throws {
        guard let input = pending else {
            throw PredictorError.inputMismatch("invoke() before writeInput()")
        }
        lastPrediction = try model.prediction(from: input)
    }

    func readOutput() throws {
        guard let output = lastPrediction?.featureValue(for: outputName)?.multiArrayValue, output.count > 0 else {
            throw PredictorError.noOutput
        }
        lastOutput = output
        lastOutputValue = output[0].floatValue
    }

    /// The first output must hold finite values (as the host's first checked run).
    func checkOutput() throws {
        guard let output = lastOutput else {
            throw PredictorError.noOutput
        }
        for index in 0..<output.count where !output[index].floatValue.isFinite {
            throw PredictorError.inputMismatch("the first output holds a non-finite value at \(index)")
        }
    }

    private static func dataType(_ dtype: TensorDType) throws -> MLMultiArrayDataType {
        switch dtype {
        case .float32:
            return .float32
        case .float16:
            return .float16
        case .int8, .uint8:
            throw PredictorError.unsupportedDType(dtype.rawValue)
        }
    }

    private static func makeInput(plan: InputTensorPlan, dataType: MLMultiArrayDataType, values: [Float]) throws -> MLMultiArray {
        let array = try MLMultiArray(shape: plan.shape.map { NSNumber(value: $0) }, dataType: dataType)
        precondition(array.count == values.count, "input size mismatch")
        if dataType == .float32 {
            let pointer = array.dataPointer.bindMemory(to: Float.self, capacity: values.count)
            for (index, value) in values.enumerated() {
                pointer[index] = value
            }
        } else {
            for (index, value) in values.enumerated() {
                array[index] = NSNumber(value: value)
            }
        }
        return array
    }

    /// A Core ML ImageType input: a BGRA pixel buffer holding the synthetic image (0...255; the model applies
    /// its own scale and mean/std).
    private static func makePixelBuffer(plan: InputTensorPlan) throws -> CVPixelBuffer {
        let dims = plan.dimensions
        var created: CVPixelBuffer?
        let status = CVPixelBufferCreate(kCFAllocatorDefault, dims.w, dims.h, kCVPixelFormatType_32BGRA, nil, &created)
        guard status == kCVReturnSuccess, let buffer = created else {
            throw PredictorError.inputMismatch("cannot allocate a \(dims.w)x\(dims.h) pixel buffer")
        }
        CVPixelBufferLockBaseAddress(buffer, [])
        defer {
            CVPixelBufferUnlockBaseAddress(buffer, [])
        }
        guard let base = CVPixelBufferGetBaseAddress(buffer)?.assumingMemoryBound(to: UInt8.self) else {
            throw PredictorError.inputMismatch("pixel buffer has no memory")
        }
        let rowBytes = CVPixelBufferGetBytesPerRow(buffer)
        for y in 0..<dims.h {
            for x in 0..<dims.w {
                let pixel = base + y * rowBytes + x * 4
                pixel[0] = InputTensorPlan.syntheticPixel(n: 0, c: 2, y: y, x: x)
                pixel[1] = InputTensorPlan.syntheticPixel(n: 0, c: 1, y: y, x: x)
                pixel[2] = InputTensorPlan.syntheticPixel(n: 0, c: 0, y: y, x: x)
                pixel[3] = 255
            }
        }
        return buffer
    }
}
