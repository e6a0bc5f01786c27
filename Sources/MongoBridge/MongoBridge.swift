/// Owning Swift wrappers over libmongoc and libbson.
import CMongoc
