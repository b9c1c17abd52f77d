"""Publishing safely: find every face (for recall), decide which may stay visible, hide the rest."""
