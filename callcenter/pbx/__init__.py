"""PBX drivers and the one interface the engine sees (:mod:`callcenter.pbx.interface`)."""
