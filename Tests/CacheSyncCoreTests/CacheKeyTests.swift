import BSONModel
import Testing
@testable import CacheSyncCore

@Suite("Cache keys")
struct CacheKeyTests {
    static let oid = BSONValue.objectId(ObjectID(hex: "663881d9a1b2c3d4e5f60718")!)

    @Test("the default template renders {coll}:{id} behind the key prefix")
    func defaultTemplate() {
        let products = CollectionConfig(database: "shop", collection: "products", strategy: .update)
        #expect(CacheKey(collection: products, keyPrefix: "", id: Self.oid).text == "products:663881d9a1b2c3d4e5f60718")
        #expect(CacheKey(collection: products, keyPrefix: "app:", id: .int64(7)).text == "app:products:7")
    }

    @Test("custom templates replace every placeholder and keep other braces")
    func customTemplate() {
        let users = CollectionConfig(database: "crm", collection: "users", strategy: .invalidate, keyTemplate: "{db}/{coll}/{id}/{id}{x}")
        #expect(CacheKey(collection: users, keyPrefix: "p:", id: .string("ann")).text == "p:crm/users/ann/ann{x}")
    }

    @Test("an ObjectId, written into the key directly, gives the key of its text", arguments: [
        "{coll}:{id}", "{id}", "{db}/{id}/{coll}/{id}é", "x",
    ])
    func objectIDKeys(template: String) {
        let layout = CacheKey.Layout(template: template, keyPrefix: "ç:", database: "shop", collection: "products")
        for hex in ["663881d9a1b2c3d4e5f60718", "000000000000000000000000", "ffffffffffffffffffffffff"] {
            let id = BSONValue.objectId(ObjectID(hex: hex)!)
            #expect(layout.key(id: id) == layout.key(idText: DocumentID.keyText(id)))
            #expect(layout.key(id: id).text.contains(hex) == template.contains("{id}"))
        }
    }

    @Test("placeholder values are not rendered again")
    func noReexpansion() {
        let products = CollectionConfig(database: "shop", collection: "products", strategy: .update)
        #expect(CacheKey(collection: products, keyPrefix: "", id: .string("{coll}{db}")).text == "products:{coll}{db}")
    }

    @Test("derived keys for the access counter and the read-through lease")
    func derivedKeys() {
        let key = CacheKey(text: "app:products:1")
        #expect(key.accessCountKey == "app:products:1:access_count")
        #expect(key.leaseKey == "app:products:1:lease")
        #expect(key.description == "app:products:1")
    }

    @Test("the collection glob stars {id} and escapes glob characters elsewhere")
    func collectionPattern() {
        let products = CollectionConfig(database: "shop", collection: "products", strategy: .update)
        #expect(CacheKey.collectionPattern(collection: products, keyPrefix: "app:") == "app:products:*")
        #expect(CacheKey.collectionPattern(template: "{db}[{coll}]:{id}", keyPrefix: "c*?\\:", database: "d", collection: "pro[d]?")
                == #"c\*\?\\:d\[pro\[d\]\?\]:*"#)
    }

    @Test("glob escaping covers exactly * ? [ ] and backslash")
    func escapeGlob() {
        #expect(CacheKey.escapeGlob(#"a*b?c[d]e\f-g^h{i}"#) == #"a\*b\?c\[d\]e\\f-g^h{i}"#)
    }
}
