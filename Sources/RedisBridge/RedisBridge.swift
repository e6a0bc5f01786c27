/// Owning Swift wrappers over hiredis.
import CHiredis
