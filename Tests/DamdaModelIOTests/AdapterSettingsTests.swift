import DamdaModelIO
import Foundation
import XCTest

/// An adapter's calibration file: read when present, absent is fine, a bad one is an error naming it.
final class AdapterSettingsTests: XCTestCase {
    func testReadsAbsentGoodAndBadFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("damda-settings-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertNil(try AdapterSettings.read(directory: dir))
        let file = dir + "/" + AdapterSettings.fileName
        try #"{"refusal_threshold": 0.6, "calibrated_on": "validation questions"}"#.write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertEqual(try AdapterSettings.read(directory: dir), AdapterSettings(refusalThreshold: 0.6, calibratedOn: "validation questions"))
        for bad in [#"{"refusal_threshold": 1.7}"#, "not json", #"{"refusal_threshold": "high"}"#] {
            try bad.write(toFile: file, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try AdapterSettings.read(directory: dir)) { error in
                XCTAssertTrue("\(error)".contains(AdapterSettings.fileName) || (error as? AdapterFileError)?.message.contains(file) == true, "\(error)")
            }
        }
    }
}
