import BSONModel
import Foundation

/// The segments of a read-through path, `GET /v1/cache/{collection}/{id}`, as they arrive (percent-encoded).
public enum ReadThroughPath {
    /// The collection name in `segment`: percent-decoded, or the segment as it is when that fails.
    public static func collection(_ segment: String) -> String {
        segment.removingPercentEncoding ?? segment
    }

    /// The `_id` in `segment` under `idType`: percent-decoded, then `DocumentID.parse`d; `nil` when the segment is
    /// not valid percent-encoding.
    public static func id(_ segment: String, idType: IDType) throws(DocumentIDError) -> BSONValue? {
        guard let text = segment.removingPercentEncoding else { return nil }
        return try DocumentID.parse(text, idType: idType)
    }
}
