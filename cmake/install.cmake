# placeholder: install rules (helper-2)
