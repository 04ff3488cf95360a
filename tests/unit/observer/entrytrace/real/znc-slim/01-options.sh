# Might be overriden in some later file, when using "FROM znc"

DATADIR="/znc-data"
